"""Named training recipes: the seed's full recipe and its ablations, each a mapping to data fractions,
stage mixtures and stage switches (`train --recipe NAME`, docs/eval.md "Ablations as recipes").

| recipe | stage 1 data | stage 2 | stage 3 | RTC |
|---|---|---|---|---|
| psi0 | EgoDex + HE, 0.5 / 0.5 | HE post-training | in-domain fine-tune | training-time RTC (max_delay 8) |
| egodex-10pct | 10 % of EgoDex episodes + HE | same | same | same |
| he-only-pretrain | HE only | same | same | same |
| no-posttrain | as psi0 | skipped: stage 3 starts the expert from scratch | same | same |
| no-rtc | as psi0 | same, no prefix conditioning (max_delay 1: d = 0 only) | same | naive chunking at deploy |

What a recipe changes in one `train` invocation (`apply`): the stage's source mixture (`weights`),
whether the stage runs at all (`stages`), and the action expert's `max_delay` (0 = no RTC: no clean
prefix in training; at deploy the engine then caps every delay at 0, which is naive chunking). Data
fractions are declared here (`data_fractions`, per source: the share of its episodes a recipe uses);
they are realized by the shards you pass: a dataset view holding that share of the episodes
(`psi0 dataset preset`, issue 17) - `check_fraction` refuses a run whose index cannot show it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    stages: tuple[int, ...] = (1, 2, 3)
    weights: dict[int, dict[str, float]] = field(default_factory=dict)       # per stage: source mixture
    data_fractions: dict[str, float] = field(default_factory=dict)          # source -> share of its episodes
    rtc: bool = True
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "stages": list(self.stages),
                "weights": {str(k): v for k, v in self.weights.items()}, "data_fractions": self.data_fractions,
                "rtc": self.rtc}


_PRETRAIN_MIX = {"egodex": 0.5, "humanoid_everyday": 0.5}

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("psi0", "the seed's recipe: EgoDex + HE pre-training (0.5/0.5), HE post-training, in-domain "
           "fine-tuning, training-time RTC", weights={1: _PRETRAIN_MIX}),
    Recipe("egodex-10pct", "as psi0 with 10 % of the EgoDex episodes in pre-training",
           weights={1: _PRETRAIN_MIX}, data_fractions={"egodex": 0.1},
           notes=("the mixture weight stays 0.5: the 10 % subset is seen as often, i.e. repeated 10x more",)),
    Recipe("he-only-pretrain", "pre-training on Humanoid Everyday only (no EgoDex)",
           weights={1: {"humanoid_everyday": 1.0}}, data_fractions={"egodex": 0.0}),
    Recipe("no-posttrain", "no stage 2: stage 3 fine-tunes from the stage-1 VLM with a fresh action expert",
           stages=(1, 3), weights={1: _PRETRAIN_MIX},
           notes=("stage 3: --init system2=RUN_S1 only (no expert=RUN_S2)",)),
    Recipe("no-rtc", "no training-time RTC: the expert never sees a committed prefix (max_delay 1: d = 0 only); "
           "deployment falls back to naive chunking", weights={1: _PRETRAIN_MIX}, rtc=False),
)}


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


NO_RTC_MAX_DELAY = 1
"""Training-time RTC draws d in 0..max_delay-1 (schemas.chunking): max_delay 1 = only d = 0, i.e. the
expert never sees a committed prefix, and serving runs naive chunking."""


def apply(recipe: Recipe, stage: int, weights: dict[str, float] | None
          ) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """(mixture weights, policy config overrides) for `stage` under `recipe`; explicit `--weights` win.
    ValueError when the recipe skips this stage."""
    if stage not in recipe.stages:
        raise ValueError(f"recipe {recipe.name!r} has no stage {stage} (its stages: {list(recipe.stages)})")
    if weights is None and stage in recipe.weights:
        weights = dict(recipe.weights[stage])
    overrides: dict[str, Any] = {}
    if not recipe.rtc:
        overrides["max_delay"] = NO_RTC_MAX_DELAY
    return weights, overrides


def check_fraction(recipe: Recipe, sources_frames: dict[str, int], full_frames: dict[str, int] | None) -> list[str]:
    """Problems with realizing the recipe's data fractions on these shards (empty: fine). Without the full
    dataset's size (`full_frames`, e.g. from a view's lineage) a fraction < 1 cannot be verified."""
    problems = []
    for source, frac in recipe.data_fractions.items():
        have = sources_frames.get(source, 0)
        if frac == 0.0 and have:
            problems.append(f"recipe {recipe.name!r} uses no {source} data, but the shards hold {have} frames of it")
        elif 0.0 < frac < 1.0 and have:
            total = (full_frames or {}).get(source)
            if total is None:
                problems.append(f"recipe {recipe.name!r} uses {frac:.0%} of {source}: pass a view holding that share "
                                f"(psi0 dataset preset); these shards do not say what share they are")
            elif abs(have / total - frac) > 0.02:
                problems.append(f"recipe {recipe.name!r} wants {frac:.0%} of {source}, the shards hold "
                                f"{have / total:.0%}")
    return problems


def help_text() -> str:
    return "\n".join(f"  {r.name:<17} {r.summary}" for r in RECIPES.values())

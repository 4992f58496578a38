"""The seed's data recipes as chains of view verbs: `psi0 dataset preset NAME INPUT... OUT_DIR`.

Inputs may mix sources whose features differ (EgoDex's 48-D action, the robots' 36-D one): presets resolve
them as `--mixture` (a feature must still mean one thing within a source). Every step writes its own view
into OUT_DIR, so the final view's lineage shows the whole recipe
(e.g. egodex-10pct: `egodex.json` = filter source=egodex, then `egodex-10pct.json` = a 10 % sample
stratified by task). `build_preset` is what `train --recipe` calls: it returns the views by role
(`train`, and `val` for recipes that hold out a split).

    from shards.views_presets import build_preset
    views = build_preset("egodex-10pct", ["out/egodex"], "views/", seed=0)   # {"train": Path(...)}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from shards import views_ops as ops
from shards.views import ViewError, write_view

EGODEX, HE, TELEOP = "egodex", "humanoid_everyday", "teleop"


def _write(inputs: Sequence[str], out: Path, verb: str, preset: str, run: Callable[[ops.Working], Any],
           mixture: bool = True, stats: str = "exact") -> Path:
    work = ops.resolve([str(i) for i in inputs], mixture=mixture)
    table, steps, options = run(work)
    operation = {"verb": verb, "preset": preset, "options": options}
    if "seed" in options:
        operation["seed"] = options["seed"]
    write_view(ops.make_view(work, table, operation, steps, out, stats), out)
    return out


def _filter(inputs: Sequence[str], out: Path, preset: str, spec: ops.FilterSpec) -> Path:
    return _write(inputs, out, "filter", preset, lambda w: (*ops.filter_table(w.table, spec), spec.to_json()))


def _sample(inputs: Sequence[str], out: Path, preset: str, fraction: float, seed: int) -> Path:
    options = {"fraction": fraction, "stratify": "task", "by": "episodes", "seed": seed}
    return _write(inputs, out, "sample", preset,
                  lambda w: (*ops.sample_table(w.table, fraction, None, seed, "task"), options))


def _split(inputs: Sequence[str], out_dir: Path, preset: str, fractions: dict[str, float], seed: int) -> dict[str, Path]:
    work = ops.resolve([str(i) for i in inputs], mixture=True)
    paths = {}
    for name, (table, steps) in ops.split_table(work.table, fractions, seed, "episode").items():
        path = out_dir / f"{name}.json"
        op = {"verb": "split", "preset": preset, "options": {"fractions": fractions, "by": "episode", "part": name},
              "seed": seed}
        write_view(ops.make_view(work, table, op, steps, path), path)
        paths[name] = path
    return paths


def _merge(inputs: Sequence[str], out: Path, preset: str) -> Path:
    return _write(inputs, out, "merge", preset,
                  lambda w: (w.table, [ops.Step(f"merge {len(inputs)} inputs", len(w.table), 0)], {"mixture": True}))


# ------------------------------------------------------------------------------------------ recipes
def egodex_10pct(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """10 % of EgoDex episodes, stratified by task (the reference's data-scaling ablation)."""
    src = _filter(inputs, out / "egodex.json", "egodex-10pct", ops.FilterSpec(sources=[EGODEX]))
    return {"train": _sample([str(src)], out / "egodex-10pct.json", "egodex-10pct", 0.1, seed)}


def he_only(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """Humanoid Everyday alone (stage 2's data)."""
    return {"train": _filter(inputs, out / "he-only.json", "he-only", ops.FilterSpec(sources=[HE]))}


def teleop_only(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """In-domain teleop recordings alone (stage 3's data)."""
    return {"train": _filter(inputs, out / "teleop-only.json", "teleop-only", ops.FilterSpec(sources=[TELEOP]))}


def robot_only(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """Every robot episode (no human video): Humanoid Everyday + teleop, any robot embodiment."""
    return {"train": _filter(inputs, out / "robot-only.json", "robot-only",
                             ops.FilterSpec(where=['embodiment != "human"']))}


def stage1_mix(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """Stage 1's mixture: 10 % of EgoDex + all of Humanoid Everyday, one view (per-source features)."""
    part = egodex_10pct(inputs, out, seed)["train"]
    he = he_only(inputs, out, seed)["train"]
    return {"train": _merge([str(part), str(he)], out / "stage1-mix.json", "stage1-mix")}


def holdout(inputs: Sequence[str], out: Path, seed: int) -> dict[str, Path]:
    """A seeded 95/5 train/val split by episode of the inputs (never splitting an episode)."""
    return _split(inputs, out, "holdout", {"train": 0.95, "val": 0.05}, seed)


@dataclass(frozen=True)
class Preset:
    help: str
    build: Callable[[Sequence[str], Path, int], dict[str, Path]]


PRESETS: dict[str, Preset] = {
    "egodex-10pct": Preset(egodex_10pct.__doc__ or "", egodex_10pct),
    "he-only": Preset(he_only.__doc__ or "", he_only),
    "teleop-only": Preset(teleop_only.__doc__ or "", teleop_only),
    "robot-only": Preset(robot_only.__doc__ or "", robot_only),
    "stage1-mix": Preset(stage1_mix.__doc__ or "", stage1_mix),
    "holdout": Preset(holdout.__doc__ or "", holdout),
}


def build_preset(name: str, inputs: Sequence[str | Path], out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write preset `name`'s views over `inputs` into `out_dir`; returns them by role (`train`, `val`)."""
    if name not in PRESETS:
        raise ViewError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    if not inputs:
        raise ViewError(f"preset {name} needs at least one input (output roots or views)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return PRESETS[name].build([str(i) for i in inputs], out, seed)

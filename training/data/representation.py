"""Named action representations: what a chunk of training targets is made of.

- `absolute` (the default): the recorded action rows themselves, chunk = the policy's horizon (30 at
  full size), every dim of every action key. Default because the robot is commanded with absolute joint
  targets and the lower body with absolute AMO commands: an absolute chunk is executed as it is, needs no
  integration (no drift between chunks) and carries the 8-DoF lower-body command, which a joint delta
  cannot; it is also what the reference fine-tunes on real robots (chunk 30, stage 3).
- `he_joint_delta28` (the reference's Humanoid Everyday post-training, `HEPosttrainRepackTransform`):
  frame-to-frame deltas a[t+1] - a[t] of the 28 upper-body dims (hands 14 + arms 14), chunk 16 at
  30 Hz, zero-padded to the 36-D action (the pad dims are masked out of the loss). Kept to reproduce and
  compare with the reference's stage 2; a server must integrate its chunks from the current joints.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.actions import PSI0_ACTION


@dataclass(frozen=True)
class ActionRepresentation:
    name: str
    kind: str                      # "absolute" | "delta"
    dims: tuple[int, int] | None   # [start, stop) of the concatenated action it keeps (None: all)
    chunk: int | None              # fixed chunk length (None: the policy's horizon)
    width: int | None              # the action width it stands for: targets are zero-padded (pad dims masked)
    description: str

    def kept(self, d: int) -> slice:
        return slice(0, d) if self.dims is None else slice(*self.dims)

    def frames_needed(self, horizon: int) -> int:
        """Action rows a chunk of `horizon` targets reads (a delta needs one more)."""
        return horizon + (1 if self.kind == "delta" else 0)

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """(frames_needed, D) raw rows -> (horizon, kept) unnormalised targets."""
        kept = rows[:, self.kept(rows.shape[1])]
        return kept[1:] - kept[:-1] if self.kind == "delta" else kept


UPPER = PSI0_ACTION.slices["upper_body"]

REPRESENTATIONS: dict[str, ActionRepresentation] = {
    "absolute": ActionRepresentation("absolute", "absolute", None, None, None,
                                     "absolute action rows, chunk = the policy horizon (default)"),
    "he_joint_delta28": ActionRepresentation("he_joint_delta28", "delta", UPPER, 16, PSI0_ACTION.size,
                                             "reference HE post-training: 28-D upper-body joint deltas, chunk 16, "
                                             "padded to 36"),
}
DEFAULT = "absolute"


def get(name: str) -> ActionRepresentation:
    if name not in REPRESENTATIONS:
        raise ValueError(f"unknown action representation {name!r}; choose from {', '.join(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]

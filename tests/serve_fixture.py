"""A servable tiny checkpoint in seconds: the tiny Psi0 policy (random weights, as training leaves them at
step 0) saved with `save_pretrained`, plus the schema / normalization file `psi0 serve` reads
(`final/normalization.json`), in the simulator's privileged observation mode."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from deploy.bundle import NORMALIZATION_FILE, Normalizer, ObservationSchema
from deploy.simrobot import privileged_state_names
from schemas.actions import PSI0_ACTION
from schemas.names import STATE_PRIVILEGED


def tiny_run(root: Path, horizon: int = 16) -> Path:
    """root/run with final/ (policy + normalization.json) and run.json; returns root/run."""
    from training.model.policy import PolicyConfig, Psi0Policy
    names = privileged_state_names()
    cfg = dataclasses.replace(PolicyConfig.load("tiny"), horizon=horizon, state_dim=max(PolicyConfig.load("tiny").state_dim, len(names)))
    run = root / "run"
    final = run / "final"
    Psi0Policy.build(cfg).save_pretrained(final)
    low, high = (np.asarray(b, np.float32) for b in PSI0_ACTION.bounds())
    norm = Normalizer(action_center=(low + high) / 2, action_scale=(high - low) / 2,
                      state_center=np.zeros(len(names), np.float32), state_scale=np.ones(len(names), np.float32))
    schema = ObservationSchema(state_key=STATE_PRIVILEGED, state_names=names, cameras=("observation.images.egocentric",),
                               image_size=(32, 32), action_names=PSI0_ACTION.dims, horizon=horizon, fps=30.0,
                               max_delay=8, source="teleop")
    (final / NORMALIZATION_FILE).write_text(json.dumps({"schema": schema.to_json(), "normalization": norm.to_json()}))
    (run / "run.json").write_text(json.dumps({"model": cfg.to_dict(), "data": {}, "shards": []}))
    return run

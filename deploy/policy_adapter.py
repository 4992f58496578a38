"""`Psi0Policy` (system-2 + system-1) as an RTC `ChunkPolicy`."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class Psi0ChunkPolicy:
    """obs = one collated batch (B=1) in the training sample layout; returns a normalised chunk.
    The committed prefix is hard-set by the expert's sampler (training-time RTC). A delay the policy was
    never trained with (>= its max_delay, `policy.cfg.chunking()`) or longer than the prefix is refused."""

    def __init__(self, policy: Any, steps: int | None = None, seed: int = 0):
        self.policy = policy.eval()
        self.steps = steps
        self.generator = torch.Generator(device=policy.system2.device).manual_seed(seed)

    @property
    def chunking(self):
        """The constants the policy was trained with (schemas.chunking.ChunkingSpec)."""
        return self.policy.cfg.chunking()

    @torch.no_grad()
    def __call__(self, obs: dict, prefix: np.ndarray, delay: int) -> np.ndarray:
        delay = self.chunking.check_delay(delay)
        if delay > len(prefix):
            raise ValueError(f"delay {delay} with a prefix of {len(prefix)} committed actions")
        pre = torch.as_tensor(np.asarray(prefix[:delay], np.float32))[None] if delay > 0 else None
        chunk = self.policy.sample_actions(obs, prefix=pre, delay=delay, steps=self.steps, generator=self.generator)
        return chunk[0].float().cpu().numpy()

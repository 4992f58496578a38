"""Adapters from trained models to the RTC engine's `ChunkPolicy` interface."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from training.model.action_expert import ActionExpert


class ExpertChunkPolicy:
    """Wraps the flow-matching action expert: the committed prefix is hard-set during sampling
    (training-time RTC), so the chunk continues exactly from what the robot is executing.

    `inputs(obs) -> (context (N, Dc), state (S,))` turns an observation into model inputs; for the
    full model that is the VLM's features, for toy models any tensor source.
    """

    def __init__(self, expert: ActionExpert, inputs: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
                 steps: int = 10, seed: int = 0, device: str | torch.device = "cpu"):
        self.expert = expert.eval().to(device)
        self.inputs, self.steps, self.device = inputs, steps, torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    @torch.no_grad()
    def __call__(self, obs: Any, prefix: np.ndarray, delay: int) -> np.ndarray:
        context, state = self.inputs(obs)
        cfg = self.expert.cfg
        delay = int(min(delay, cfg.max_delay, len(prefix)))
        pre = None
        if delay > 0:
            pre = torch.as_tensor(np.asarray(prefix[:delay], np.float32), device=self.device)[None]
        chunk = self.expert.sample(context[None].to(self.device), state[None].to(self.device),
                                   prefix=pre, delay=delay, steps=self.steps, generator=self.generator)
        return chunk[0].float().cpu().numpy()

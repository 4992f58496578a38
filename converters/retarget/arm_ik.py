"""Damped least-squares IK for robot arms (an embodiment's `ArmIK` chains; G1), batched over every frame.

Why this shape: per-frame solvers in Python are slow and jittery. Here all frames iterate together
(torch, float64, CPU): one DLS solve per iteration is a batched 6x6 system. Warm start then runs as
sweeps over time: each frame re-solves from its neighbour's solution and keeps whichever answer is
better, so good solutions propagate along the trajectory (a vectorised stand-in for sequential
frame-to-frame warm starting, with the same effect on smooth motion).

Frames: targets are wrist poses in the robot *torso_link* frame. Human data arrives in a camera
(head) frame; `Calibration` documents and applies the camera -> torso transform and the human ->
robot scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from converters.retarget.frames import CV_TO_TORSO as _CV_TO_TORSO  # noqa: F401 - re-exported names
from converters.retarget.frames import HAND_IN_WRIST, Calibration  # noqa: F401
from converters.retarget.kinematics import DTYPE, Chain, chain
from schemas import embodiments


@dataclass(frozen=True)
class IKConfig:
    iterations: int = 40
    damping: float = 0.05
    rot_weight: float = 0.3            # metres of position error worth one radian of orientation error
    max_step: float = 0.4              # rad per iteration, per joint
    sweeps: int = 4                    # forward+backward warm-start sweeps over time (unsolved frames only)
    sweep_iterations: int = 25
    tolerance: float = 1e-5            # stop iterating (and skip sweeps) once every frame is this close
    seeds: tuple[tuple[float, ...], ...] = field(default=embodiments.get().ik.seeds)
    """Multi-start seeds; the default embodiment's (`ArmIK.seeds`: G1 arm postures)."""


@dataclass
class IKResult:
    q: np.ndarray                      # (N, dof)
    position_error: np.ndarray         # (N,) metres
    rotation_error: np.ndarray         # (N,) radians


def rotation_error_vector(r: torch.Tensor, r_target: torch.Tensor) -> torch.Tensor:
    """Axis-angle-like error of `r_target @ r.T` (exact direction, sin-scaled magnitude) in the base frame."""
    return 0.5 * (torch.linalg.cross(r[..., :, 0], r_target[..., :, 0]) + torch.linalg.cross(r[..., :, 1], r_target[..., :, 1])
                  + torch.linalg.cross(r[..., :, 2], r_target[..., :, 2]))


def rotation_angle(r: torch.Tensor, r_target: torch.Tensor) -> torch.Tensor:
    cos = ((r * r_target).sum(dim=(-1, -2)) - 1.0) / 2.0
    return torch.arccos(cos.clamp(-1.0, 1.0))


def _errors(chain: Chain, q: torch.Tensor, target: torch.Tensor):
    frames = chain.fk(q)
    end = frames[:, -1]
    e_pos = target[:, :3, 3] - end[:, :3, 3]
    e_rot = rotation_error_vector(end[:, :3, :3], target[:, :3, :3])
    return frames, end, e_pos, e_rot


def _jacobian(chain: Chain, frames: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    axes = frames[:, :, :3, :3] @ chain._axes[None, :, :, None]            # (B, n, 3, 1)
    axes = axes[..., 0][:, chain.actuated]
    origins = frames[:, chain.actuated, :3, 3]
    jv = torch.linalg.cross(axes, end[:, None, :3, 3] - origins)
    return torch.cat([jv, axes], dim=-1).transpose(1, 2)                  # (B, 6, dof)


def _iterate(chain: Chain, q: torch.Tensor, target: torch.Tensor, cfg: IKConfig, iterations: int) -> torch.Tensor:
    w = torch.tensor([1.0, 1.0, 1.0] + [cfg.rot_weight] * 3, dtype=DTYPE)
    eye = torch.eye(6, dtype=DTYPE) * cfg.damping ** 2
    for it in range(iterations):
        frames, end, e_pos, e_rot = _errors(chain, q, target)
        if it % 5 == 4 and float(torch.maximum(e_pos.abs().amax(), e_rot.abs().amax())) < cfg.tolerance:
            break
        jac = _jacobian(chain, frames, end) * w[:, None]
        err = torch.cat([e_pos, e_rot], dim=-1) * w
        jjt = jac @ jac.transpose(1, 2) + eye
        dq = (jac.transpose(1, 2) @ torch.linalg.solve(jjt, err[..., None]))[..., 0]
        q = chain.clamp(q + dq.clamp(-cfg.max_step, cfg.max_step))
    return q


def _cost(chain: Chain, q: torch.Tensor, target: torch.Tensor, cfg: IKConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    end = chain.fk(q)[:, -1]
    pos = torch.linalg.norm(target[:, :3, 3] - end[:, :3, 3], dim=-1)
    rot = rotation_angle(end[:, :3, :3], target[:, :3, :3])
    return pos + cfg.rot_weight * rot, pos, rot


def solve_ik(chain: Chain, targets: np.ndarray, cfg: IKConfig = IKConfig(), q_init: np.ndarray | None = None) -> IKResult:
    """Targets (N, 4, 4) in the chain base frame -> joints (N, dof) with per-frame residuals.

    Seeds (and `q_init`, e.g. the previous chunk's solution) are solved in parallel; the best per
    frame wins; then `sweeps` forward/backward passes re-solve every frame from its neighbour.
    """
    target = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    n = target.shape[0]
    if n == 0:
        return IKResult(np.zeros((0, chain.dof)), np.zeros(0), np.zeros(0))
    seeds = [np.broadcast_to(np.asarray(s, dtype=np.float64), (n, chain.dof)) for s in cfg.seeds]
    if q_init is not None:
        seeds.insert(0, np.asarray(q_init, dtype=np.float64).reshape(n, chain.dof))
    with torch.no_grad():
        best_q = _iterate(chain, chain.clamp(torch.tensor(seeds[0])), target, cfg, cfg.iterations)
        best_cost = _cost(chain, best_q, target, cfg)[0]
        for seed in seeds[1:]:      # further seeds only where the first did not converge
            todo = torch.nonzero(best_cost > cfg.tolerance * 10).flatten()
            if todo.numel() == 0:
                break
            cand = _iterate(chain, chain.clamp(torch.tensor(seed)[todo]), target[todo], cfg, cfg.iterations)
            c = _cost(chain, cand, target[todo], cfg)[0]
            better = c < best_cost[todo]
            best_q[todo] = torch.where(better[:, None], cand, best_q[todo])
            best_cost[todo] = torch.where(better, c, best_cost[todo])
        for _ in range(cfg.sweeps if n > 1 else 0):
            for shift in (1, -1):
                # only frames not yet solved are re-seeded from their neighbour's solution
                todo = torch.nonzero(best_cost > cfg.tolerance * 10).flatten()
                if todo.numel() == 0:
                    break
                init = torch.roll(best_q, shifts=shift, dims=0)[todo]
                cand = _iterate(chain, init, target[todo], cfg, cfg.sweep_iterations)
                c = _cost(chain, cand, target[todo], cfg)[0]
                better = c < best_cost[todo]
                best_q[todo] = torch.where(better[:, None], cand, best_q[todo])
                best_cost[todo] = torch.where(better, c, best_cost[todo])
        _, pos, rot = _cost(chain, best_q, target, cfg)
    return IKResult(best_q.numpy(), pos.numpy(), rot.numpy())


def arm_chain(side: str, embodiment: str | None = None) -> Chain:
    """The torso -> wrist chain IK solves for one arm of `embodiment` (default: `embodiments.DEFAULT`)."""
    emb = embodiments.get(embodiment)
    if emb.ik is None:
        raise ValueError(f"{emb.name}: no arm kinematics to solve IK on")
    return chain(emb.ik.chains[side])


def arm_fk(side: str, q: np.ndarray, embodiment: str | None = None) -> np.ndarray:
    """(N, dof) joint angles -> (N, 4, 4) wrist poses in the torso frame."""
    with torch.no_grad():
        return arm_chain(side, embodiment).fk(torch.as_tensor(np.asarray(q, np.float64)))[:, -1].numpy()

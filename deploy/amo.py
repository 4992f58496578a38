"""System-0 with a learned lower-body policy: a TorchScript runner with AMO's I/O contract.

AMO (OpenTeleVision/AMO `play_amo.py`; ../shared/reference/psi0_amo_teleop_detail.md section 2) tracks the
8-DoF command at 50 Hz from proprioception: it sees 23 joints (12 legs, 3 waist, 4 per arm: shoulder
pitch/roll/yaw + elbow) and outputs PD targets for the 15 leg + waist joints:

    obs_prop (93) = [gyro * 0.25 (3), roll, pitch (2), sin/cos(yaw - target yaw) (2), q - q_default (23),
                     dq * 0.05 (23; ankles and waist roll/pitch zeroed), last action (23: its 15 raw outputs,
                     then the arms' (q - q_default) / 0.25), gait clock sin (2), adapter output (15)]
    obs_demo (17) = [arm q (8), vx, vy, 0, torso yaw, pitch, roll, height x 3]
    policy(obs = [obs_prop, obs_demo, priv zeros (3), history of the 10 previous obs_prop],
           extra_hist = the last 25 obs_prop incl. this one)  ->  a (15)
    PD target = clip(a, +-40) * 0.25 + q_default[:15]

The adapter (an MLP, normalized in/out) maps [0.75 + height offset, torso yaw, pitch, roll, arm q (8)] to a
15-D reference lower-body pose. Psi0's 8-DoF command maps onto AMO's command vector as: vx, vy, target
yaw (heading), height - 0.75, torso yaw / pitch / roll; the robot stands in place (heading error zeroed,
gait clock parked) while |vx|, |vy| and |yaw rate| are all < 0.1, as Psi0's deploy checks.

Real weights (`amo_jit.pt`, `adapter_jit.pt`, `adapter_norm_stats.pt`) come from the user's copy of the
AMO repository; `write_random_amo` writes TorchScripts of the same shapes for tests. The default joint
pose and gains are the values play_amo.py uses (kept in `AmoContract`, overridable).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from schemas.embodiments import G1_BODY, G1_LEGS_WAIST

_ARM_JOINTS = tuple(f"{s}_{j}" for s in ("left", "right") for j in ("shoulder_pitch", "shoulder_roll", "shoulder_yaw",
                                                                     "elbow"))
AMO_JOINTS: tuple[str, ...] = G1_LEGS_WAIST.dims + _ARM_JOINTS
"""AMO's 23 observed joints: legs + waist (its outputs) then 4 per arm."""
AMO_BODY_INDEX = np.array([G1_BODY.index(j) for j in AMO_JOINTS])
"""Where each AMO joint sits in the G1 body (SDK motor order)."""
N_OUT = G1_LEGS_WAIST.size
N_ARM = len(_ARM_JOINTS)
_CMD = {n: i for i, n in enumerate(LOWER_BODY_COMMAND.dims)}


def _per_joint(legs: tuple[float, ...], waist: float, arm: tuple[float, ...]) -> np.ndarray:
    return np.array(legs * 2 + (waist,) * 3 + arm * 2, np.float64)


@dataclass(frozen=True)
class AmoContract:
    """AMO's constants (play_amo.py)."""

    default_q: np.ndarray = field(default_factory=lambda: np.array(
        (-0.1, 0.0, 0.0, 0.3, -0.2, 0.0) * 2 + (0.0,) * 3 + (0.5, 0.0, 0.2, 0.3) + (0.5, 0.0, -0.2, 0.3)))
    kp: np.ndarray = field(default_factory=lambda: _per_joint((150, 150, 150, 300, 80, 20), 400, (80, 80, 40, 60)))
    kd: np.ndarray = field(default_factory=lambda: _per_joint((2, 2, 2, 4, 2, 1), 15, (2, 2, 1, 1)))
    action_scale: float = 0.25
    action_clip: float = 40.0
    ang_vel_scale: float = 0.25
    dof_vel_scale: float = 0.05
    zero_vel_joints: tuple[str, ...] = ("left_ankle_pitch", "left_ankle_roll", "right_ankle_pitch", "right_ankle_roll",
                                        "waist_roll", "waist_pitch")
    history: int = 10
    extra_history: int = 25
    n_priv: int = 3
    gait_hz: float = 1.3
    control_hz: float = 50.0
    stand_threshold: float = 0.1

    @property
    def n_prop(self) -> int:
        return 3 + 2 + 2 + 3 * len(AMO_JOINTS) + 2 + N_OUT

    @property
    def n_demo(self) -> int:
        return N_ARM + 3 + 3 + 3

    @property
    def obs_dim(self) -> int:
        return self.n_prop + self.n_demo + self.n_priv + self.history * self.n_prop

    @property
    def extra_dim(self) -> int:
        return self.extra_history * self.n_prop

    @property
    def adapter_in(self) -> int:
        return 4 + N_ARM


class AmoRunner:
    """System-0 controller (sim.tracker.LowerBodyController protocol, free floating base)."""

    base_mode = "free"

    def __init__(self, policy: Any, adapter: Any | None = None, adapter_norm: dict[str, np.ndarray] | None = None,
                 contract: AmoContract = AmoContract()):
        import torch  # noqa: PLC0415
        self.torch = torch
        self.policy, self.adapter, self.c = policy, adapter, contract
        norm = adapter_norm or {}
        self._norm = {k: torch.as_tensor(np.asarray(norm[k], np.float32)) for k in
                      ("input_mean", "input_std", "output_mean", "output_std") if k in norm}
        if adapter is not None and len(self._norm) != 4:
            raise ValueError("the adapter needs adapter_norm with input_mean/std and output_mean/std")
        self._zero_vel = np.array([AMO_JOINTS.index(j) for j in contract.zero_vel_joints])
        self.compute_ms: list[float] = []      # wall time per tick (includes waiting for a CPU)
        self.cpu_ms: list[float] = []          # this thread's CPU time per tick (the runner's own cost)
        self.warmup()
        self.reset(None)

    def warmup(self, calls: int = 5) -> None:
        """TorchScript profiles and optimizes on its first calls (hundreds of ms): do them before the robot
        depends on the 50 Hz deadline."""
        torch = self.torch
        obs, extra = torch.zeros(1, self.c.obs_dim), torch.zeros(1, self.c.extra_dim)
        with torch.no_grad():
            for _ in range(calls):
                self.policy(obs, extra)
                if self.adapter is not None:
                    self.adapter(torch.zeros(1, self.c.adapter_in))

    @classmethod
    def load(cls, policy_path: str | Path, adapter_path: str | Path | None = None,
             adapter_norm_path: str | Path | None = None, trust_pickle: bool = False,
             contract: AmoContract = AmoContract()) -> "AmoRunner":
        """TorchScript files from a local path (AMO's `amo_jit.pt`, `adapter_jit.pt`, `adapter_norm_stats.pt`).
        AMO's norm stats are a pickled dict of arrays: loading them needs `trust_pickle` (your own copy)."""
        import torch  # noqa: PLC0415
        policy = torch.jit.load(str(policy_path), map_location="cpu").eval()
        adapter = torch.jit.load(str(adapter_path), map_location="cpu").eval() if adapter_path else None
        norm = None
        if adapter_norm_path:
            raw = torch.load(str(adapter_norm_path), map_location="cpu", weights_only=not trust_pickle)
            norm = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float32) for k, v in raw.items()}
        return cls(policy, adapter, norm, contract)

    def reset(self, obs: Any) -> None:
        n = self.c.n_prop
        self.hist = deque([np.zeros(n)] * self.c.history, maxlen=self.c.history)
        self.extra = deque([np.zeros(n)] * self.c.extra_history, maxlen=self.c.extra_history)
        self.last_raw = np.zeros(N_OUT)
        self.gait = np.array([0.25, 0.25])

    # ------------------------------------------------------------------ the contract
    def amo_command(self, command: np.ndarray) -> dict[str, float]:
        c = np.asarray(command, np.float64)
        return {"vx": c[_CMD["vx"]], "vy": c[_CMD["vy"]], "yaw_rate": c[_CMD["yaw_rate"]],
                "target_yaw": c[_CMD["target_yaw"]], "height_offset": c[_CMD["torso_height"]] - NOMINAL_TORSO_HEIGHT,
                "torso_yaw": c[_CMD["torso_yaw"]], "torso_pitch": c[_CMD["torso_pitch"]],
                "torso_roll": c[_CMD["torso_roll"]]}

    def standing(self, cmd: dict[str, float]) -> bool:
        t = self.c.stand_threshold
        return abs(cmd["vx"]) < t and abs(cmd["vy"]) < t and abs(cmd["yaw_rate"]) < t

    def _adapter(self, cmd: dict[str, float], arm_q: np.ndarray) -> np.ndarray:
        if self.adapter is None:
            return np.zeros(N_OUT)
        torch = self.torch
        x = np.concatenate([[NOMINAL_TORSO_HEIGHT + cmd["height_offset"], cmd["torso_yaw"], cmd["torso_pitch"],
                             cmd["torso_roll"]], arm_q])
        x = (torch.as_tensor(x, dtype=torch.float32)[None] - self._norm["input_mean"]) / (self._norm["input_std"] + 1e-8)
        with torch.no_grad():
            y = self.adapter(x) * self._norm["output_std"] + self._norm["output_mean"]
        return y[0].numpy().astype(np.float64)

    def observation(self, command: np.ndarray, body_q: np.ndarray, body_dq: np.ndarray, rpy: np.ndarray,
                    gyro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(obs (obs_dim,), extra_hist (extra_dim,)) for this tick; advances the histories."""
        c = self.c
        cmd = self.amo_command(command)
        q = np.asarray(body_q, np.float64)[AMO_BODY_INDEX]
        dq = np.asarray(body_dq, np.float64)[AMO_BODY_INDEX].copy()
        dq[self._zero_vel] = 0.0
        stand = self.standing(cmd)
        dyaw = 0.0 if stand else float((rpy[2] - cmd["target_yaw"] + np.pi) % (2 * np.pi) - np.pi)
        arm_q = q[N_OUT:]
        last = np.concatenate([self.last_raw, (q - c.default_q)[N_OUT:] / c.action_scale])
        prop = np.concatenate([np.asarray(gyro, np.float64) * c.ang_vel_scale, np.asarray(rpy[:2], np.float64),
                               [np.sin(dyaw), np.cos(dyaw)], q - c.default_q, dq * c.dof_vel_scale, last,
                               np.sin(2 * np.pi * self.gait), self._adapter(cmd, arm_q)])
        height = NOMINAL_TORSO_HEIGHT + cmd["height_offset"]
        demo = np.concatenate([arm_q, [cmd["vx"], cmd["vy"], 0.0, cmd["torso_yaw"], cmd["torso_pitch"],
                                       cmd["torso_roll"]], [height] * 3])
        obs = np.concatenate([prop, demo, np.zeros(c.n_priv), np.concatenate(list(self.hist))])
        self.hist.append(prop)
        self.extra.append(prop)
        self._advance_gait(stand)
        return obs, np.concatenate(list(self.extra))

    def _advance_gait(self, stand: bool) -> None:
        self.gait = (self.gait + self.c.gait_hz / self.c.control_hz) % 1.0
        near = np.abs(self.gait - 0.25) < 0.05
        if stand and near.any():
            self.gait = np.array([0.25, 0.25])
        elif not stand and near.all():
            self.gait = np.array([0.25, 0.75])

    def targets(self, command: np.ndarray, body_q: np.ndarray, body_dq: np.ndarray, rpy: np.ndarray,
                gyro: np.ndarray) -> np.ndarray:
        """(15,) PD targets for legs + waist (G1_LEGS_WAIST order) for this 50 Hz tick."""
        torch = self.torch
        t0, c0 = time.perf_counter(), time.thread_time()
        obs, extra = self.observation(command, body_q, body_dq, rpy, gyro)
        with torch.no_grad():
            raw = self.policy(torch.as_tensor(obs, dtype=torch.float32)[None],
                              torch.as_tensor(extra, dtype=torch.float32)[None])
        raw = np.clip(raw[0].numpy().astype(np.float64), -self.c.action_clip, self.c.action_clip)
        self.last_raw = raw
        out = raw * self.c.action_scale + self.c.default_q[:N_OUT]
        self.compute_ms.append((time.perf_counter() - t0) * 1e3)
        self.cpu_ms.append((time.thread_time() - c0) * 1e3)
        return out

    # ------------------------------------------------------------------ sim.tracker.LowerBodyController
    def step(self, command: np.ndarray, obs: Any):
        from sim.tracker import LowerBodyTargets, clamp_command  # noqa: PLC0415
        c = clamp_command(command)
        q = self.targets(c, obs.body_q, obs.body_dq, obs.base_rpy, obs.base_ang_vel)
        return LowerBodyTargets(leg_waist_q=q, base_q=None, executed=c)


def write_random_amo(directory: str | Path, seed: int = 0, hidden: int = 256,
                     contract: AmoContract = AmoContract()) -> dict[str, Path]:
    """TorchScript policy + adapter and adapter norm stats with AMO's shapes and random weights (tests)."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    class Policy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hist = nn.Sequential(nn.Linear(contract.extra_dim, hidden), nn.ELU(), nn.Linear(hidden, 32))
            self.mlp = nn.Sequential(nn.Linear(contract.obs_dim + 32, hidden), nn.ELU(), nn.Linear(hidden, hidden),
                                     nn.ELU(), nn.Linear(hidden, N_OUT))

        def forward(self, obs: torch.Tensor, extra_hist: torch.Tensor) -> torch.Tensor:
            return self.mlp(torch.cat([obs, self.hist(extra_hist)], dim=-1))

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = torch.jit.script(Policy().eval())
        adapter = torch.jit.script(nn.Sequential(nn.Linear(contract.adapter_in, 64), nn.ELU(), nn.Linear(64, N_OUT)))
    paths = {"policy": d / "amo_jit.pt", "adapter": d / "adapter_jit.pt", "adapter_norm": d / "adapter_norm_stats.pt"}
    policy.save(str(paths["policy"]))
    adapter.save(str(paths["adapter"]))
    torch.save({"input_mean": torch.zeros(contract.adapter_in), "input_std": torch.ones(contract.adapter_in),
                "output_mean": torch.as_tensor(contract.default_q[:N_OUT], dtype=torch.float32),
                "output_std": torch.full((N_OUT,), 0.1)}, str(paths["adapter_norm"]))
    return paths

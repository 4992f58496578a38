"""Human hand keypoints -> Dex3-1 (7/hand) and Inspire (6/hand) joint angles.

Vector retargeting (as dex-retargeting does it), written here over our own FK: in a *palmar hand
frame* (x: wrist -> between index and middle knuckles, z: palm normal pointing palmar, y = z x x)
the robot's wrist->fingertip, wrist->middle-joint and thumb->fingertip vectors should equal the
human's, scaled. All frames of an episode are solved at once with L-BFGS (torch autograd); joint
limits are exact through a sigmoid reparametrisation; a smoothness term couples neighbouring frames.

The hand tables (chains, finger maps, pinch fingers, mirroring) are data in `schemas.embodiments`
(`HandSpec`); `hand_model(spec, side)` turns one side into the `HandModel` the solver uses. Chirality
lives there too: Unitree's right Dex3 URDF is the left one rotated 180 deg about x (human index ->
URDF `middle` for that hand); Inspire is modelled as a right hand and left human hands are mirrored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from converters.retarget.kinematics import DTYPE, Chain, chain
from schemas.embodiments import (DEX3, HUMAN_HAND_KNUCKLE, HUMAN_HAND_MID, HUMAN_HAND_TIP, HUMAN_HAND_WRIST, INSPIRE,
                                 MEDIAPIPE_FROM_HUMAN25, HandSpec)

# EgoDex 25-joint layout indices (schemas.embodiments.human_hand_joints)
H_WRIST = HUMAN_HAND_WRIST
H_KNUCKLE = HUMAN_HAND_KNUCKLE
H_MID = HUMAN_HAND_MID                     # PIP (thumb: IP)
H_TIP = HUMAN_HAND_TIP


@dataclass
class HandModel:
    name: str
    chain: Chain
    side: str                        # chirality of the human hand the model expects ("left"/"right")
    mirror_input: bool               # mirror human keypoints before fitting (left hand on a right model)
    finger_map: dict[str, str]       # robot finger -> human finger
    pinch: tuple[str, ...]           # robot fingers paired with the thumb for thumb->tip vectors

    def __post_init__(self) -> None:
        with torch.no_grad():
            zero = torch.zeros(1, self.chain.dof, dtype=DTYPE)
            mid = (self.chain.lower + self.chain.upper)[None] / 2
            p0 = self.chain.point_positions(self.chain.fk(zero), self._names("tip"))[0]
            p1 = self.chain.point_positions(self.chain.fk(mid), self._names("tip"))[0]
            pts = self.chain.point_positions(self.chain.fk(zero), ["wrist", "index_base", "middle_base"])[0]
        wrist, index, middle = pts
        # the robot's hand frame is built by the *same* rule as the human's, from the robot rendered in the
        # human layout at q=0, so both sides agree by construction; check it points palmar (fingers flex that way)
        kp = torch.as_tensor(robot_keypoints25(self, np.zeros((1, self.chain.dof)), mirror=False))
        self.frame = human_hand_frame(kp, self.side)[0]
        flex = (p1 - p0)[1:].mean(0)
        if float(flex @ self.frame[:, 2]) <= 0:
            raise ValueError(f"{self.name}: finger map / chirality inconsistent (palm normal not palmar)")
        self.wrist = wrist
        self.length = float(torch.linalg.norm((index + middle) / 2 - wrist))

    @property
    def fingers(self) -> list[str]:
        return list(self.finger_map)

    def _names(self, kind: str) -> list[str]:
        return [f"{f}_{kind}" for f in self.fingers]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.norm(v, dim=-1, keepdim=True).clamp_min(1e-9)


_MODELS: dict[tuple[int, str], tuple[HandSpec, HandModel]] = {}


def hand_model(spec: HandSpec, side: str) -> HandModel:
    """The retargeting model of one side of a `schemas.embodiments` hand (built once per process)."""
    hit = _MODELS.get((id(spec), side))
    if hit is None or hit[0] is not spec:
        hs = spec.side(side)
        model = HandModel(f"{spec.name}_{side}", chain(hs.chain), hs.model_side, hs.mirror_input,
                          dict(hs.finger_map), tuple(spec.pinch))
        hit = _MODELS[(id(spec), side)] = (spec, model)
    return hit[1]


def dex3_model(side: str) -> HandModel:
    """Shorthand for `hand_model(schemas.embodiments.DEX3, side)`."""
    return hand_model(DEX3, side)


def inspire_model(side: str) -> HandModel:
    """Shorthand for `hand_model(schemas.embodiments.INSPIRE, side)`."""
    return hand_model(INSPIRE, side)


_H25_SOURCE = np.zeros(25, np.intp)                                          # human25 row <- MediaPipe landmark
_H25_SOURCE[list(MEDIAPIPE_FROM_HUMAN25)] = np.arange(len(MEDIAPIPE_FROM_HUMAN25))
_H25_META = np.array([5, 10, 15, 20])                                        # metacarpals (no MediaPipe landmark)
_H25_META_KNUCKLE = np.array([MEDIAPIPE_FROM_HUMAN25.index(k) for k in (6, 11, 16, 21)])   # their knuckles


def human25_from_mediapipe(kp21: np.ndarray) -> np.ndarray:
    """(..., 21, 3) MediaPipe landmarks -> (..., 25, 3) EgoDex layout (metacarpals = wrist/knuckle midpoints).

    (Two gathers and one midpoint expression: the teleop loop calls this for each hand every tick.)"""
    kp21 = np.asarray(kp21, dtype=np.float64)
    if kp21.ndim == 2:                                           # one hand (basic indexing on axis 0 is faster)
        out = kp21[_H25_SOURCE]                                  # metacarpal rows hold the wrist until set
        out[_H25_META] = (kp21[0] + kp21[_H25_META_KNUCKLE]) / 2
        return out
    out = kp21[..., _H25_SOURCE, :]
    out[..., _H25_META, :] = (kp21[..., :1, :] + kp21[..., _H25_META_KNUCKLE, :]) / 2
    return out


def human_hand_frame(kp: torch.Tensor, side: str) -> torch.Tensor:
    """(T, 25, 3) keypoints -> (T, 3, 3) palmar hand frame (columns x, y, z) of a `side` hand."""
    sign = 1.0 if side == "left" else -1.0
    wrist = kp[:, H_WRIST]
    x = _unit((kp[:, H_KNUCKLE["index"]] + kp[:, H_KNUCKLE["middle"]]) / 2 - wrist)
    lateral = kp[:, H_KNUCKLE["index"]] - kp[:, H_KNUCKLE["little"]]
    n = sign * torch.linalg.cross(x, lateral)
    z = _unit(n - (n * x).sum(-1, keepdim=True) * x)
    return torch.stack([x, torch.linalg.cross(z, x), z], dim=-1)


@dataclass(frozen=True)
class HandRetargetConfig:
    scale: float | None = None          # None: per-episode robot/human palm-length ratio
    mid_weight: float = 0.5
    pinch_weight: float = 1.0
    smooth_weight: float = 0.02
    iterations: int = 60


@dataclass
class HandResult:
    q: np.ndarray                       # (T, dof) hardware order
    tip_error: np.ndarray               # (T,) mean fingertip distance (m, robot scale)
    scale: float


def _targets(model: HandModel, kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Human vectors in the hand frame: tips (T,F,3), mids (T,F,3), pinch (T,P,3)."""
    frame = human_hand_frame(kp, model.side)
    rel = (kp - kp[:, :1]) @ frame                         # (T, 25, 3) in hand frame
    hf = [model.finger_map[f] for f in model.fingers]
    tips = rel[:, [H_TIP[f] for f in hf]]
    mids = rel[:, [H_MID[f] for f in hf]]
    pinch = torch.stack([tips[:, model.fingers.index(p)] - tips[:, 0] for p in model.pinch], dim=1)
    return tips, mids, pinch


def _robot_vectors(model: HandModel, q: torch.Tensor):
    rot, pos = model.chain.fk_rp(q)
    tips = (model.chain.points_rp(rot, pos, model._names("tip")) - model.wrist) @ model.frame
    mids = (model.chain.points_rp(rot, pos, model._names("mid")) - model.wrist) @ model.frame
    pinch = torch.stack([tips[:, model.fingers.index(p)] - tips[:, 0] for p in model.pinch], dim=1)
    return tips, mids, pinch


def retarget_hand(model: HandModel, keypoints: np.ndarray, cfg: HandRetargetConfig = HandRetargetConfig(),
                  q_init: np.ndarray | None = None) -> HandResult:
    """(T, 25, 3) human keypoints of `model`'s side (any rigid frame) -> robot joint angles (T, dof)."""
    kp = torch.as_tensor(np.array(keypoints, dtype=np.float64))
    if model.mirror_input:
        kp = kp * torch.tensor([-1.0, 1.0, 1.0], dtype=DTYPE)
    t = kp.shape[0]
    if t == 0:
        return HandResult(np.zeros((0, model.chain.dof)), np.zeros(0), 1.0)
    lo, hi = model.chain.lower, model.chain.upper
    with torch.no_grad():
        h_tips, h_mids, h_pinch = _targets(model, kp)
        human_len = torch.linalg.norm((kp[:, H_KNUCKLE["index"]] + kp[:, H_KNUCKLE["middle"]]) / 2 - kp[:, 0], dim=-1)
        scale = cfg.scale if cfg.scale is not None else model.length / max(float(human_len.median()), 1e-6)
    q0 = torch.as_tensor(q_init, dtype=DTYPE) if q_init is not None else ((lo + hi) / 2 + 0.0 * kp[:, :1, 0])
    frac = ((q0 - lo) / (hi - lo)).clamp(1e-3, 1 - 1e-3)
    u = torch.logit(frac).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=cfg.iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20)

    def closure():
        opt.zero_grad()
        q = lo + (hi - lo) * torch.sigmoid(u)
        r_tips, r_mids, r_pinch = _robot_vectors(model, q)
        loss = ((r_tips - scale * h_tips) ** 2).sum() + cfg.mid_weight * ((r_mids - scale * h_mids) ** 2).sum() \
            + cfg.pinch_weight * ((r_pinch - scale * h_pinch) ** 2).sum()
        if t > 1:
            loss = loss + cfg.smooth_weight * ((q[1:] - q[:-1]) ** 2).sum() * 1e-2
        loss = loss / t
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        q = lo + (hi - lo) * torch.sigmoid(u)
        r_tips, _, _ = _robot_vectors(model, q)
        err = torch.linalg.norm(r_tips - scale * h_tips, dim=-1).mean(-1)
    return HandResult(q.numpy(), err.numpy(), float(scale))


def robot_keypoints25(model: HandModel, q: np.ndarray, mirror: bool = True) -> np.ndarray:
    """Render robot joint angles as human-layout keypoints (T, 25, 3) in the robot palm frame (for tests and
    visual checks): wrist, knuckles, middle joints and tips at the mapped human indices. A missing
    little knuckle is extrapolated across the palm; the other missing joints sit at their knuckle."""
    with torch.no_grad():
        frames = model.chain.fk(torch.as_tensor(np.asarray(q, np.float64)))
        pts = {n: model.chain.point_positions(frames, [n])[:, 0] for n in model.chain.points}
    t = frames.shape[0]
    out = np.zeros((t, 25, 3))
    out[:] = pts["wrist"].numpy()[:, None]
    for robot_f, human_f in model.finger_map.items():
        if robot_f != "thumb":
            out[:, H_KNUCKLE[human_f]] = pts[f"{robot_f}_base"].numpy()
        out[:, H_MID[human_f]] = pts[f"{robot_f}_mid"].numpy()
        out[:, H_TIP[human_f]] = pts[f"{robot_f}_tip"].numpy()
    if "little" not in model.finger_map.values():
        out[:, H_KNUCKLE["little"]] = 2 * out[:, H_KNUCKLE["middle"]] - out[:, H_KNUCKLE["index"]]
    if mirror and model.mirror_input:
        out = out * np.array([-1.0, 1.0, 1.0])
    return out

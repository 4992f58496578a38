"""Arm inverse kinematics on the simulator's own model (our IK, not `converters.retarget.arm_ik`).

Why our own: the experts need hand targets in the simulated world to land where MuJoCo puts the hand
(mjlab's G1 differs from the project's arm table by ~1 cm at the shoulder), and MuJoCo gives exact
site Jacobians. Same method as the project's solver: damped least squares on position + weighted
orientation error, per-iteration step clamp, joint clamp, warm-started from the last solution.
"""
from __future__ import annotations

import mujoco
import numpy as np

from schemas.embodiments import G1_BODY


STEP_TOL = 2e-4
"""Stop iterating once no joint moves more than this (rad): with the rest-posture rows the position /
orientation error never reaches zero, and further iterations change nothing that matters."""


class ArmIK:
    """One arm: joint targets that put a site (the hand's grasp site) at a world pose."""

    def __init__(self, model: mujoco.MjModel, side: str, site: str, *, damping: float = 0.03,
                 rot_weight: float = 0.3, max_step: float = 0.25):
        self.model = model
        self.data = mujoco.MjData(model)
        names = G1_BODY.names(f"{side}_arm")
        jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{n}_joint") for n in names]
        self.qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self.dadr = np.array([model.jnt_dofadr[j] for j in jids])
        self.lo = np.array([model.jnt_range[j, 0] for j in jids])
        self.hi = np.array([model.jnt_range[j, 1] for j in jids])
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        self.damping, self.rot_weight, self.max_step = damping, rot_weight, max_step
        self._jp = np.zeros((3, model.nv))
        self._jr = np.zeros((3, model.nv))

    def solve(self, qpos: np.ndarray, q_arm: np.ndarray, pos: np.ndarray, rot: np.ndarray | None,
              iterations: int = 8, rest: np.ndarray | None = None, rest_weight: float = 0.03) -> tuple[np.ndarray, float]:
        """Arm joints (7,) for the site at `pos` (and `rot`, 3x3, if given), the rest of the robot at
        `qpos`; returns (q, position error m). `rest`: a weak pull towards a rest posture (extra
        least-squares rows), so the redundant arm does not wander into odd elbow / shoulder-yaw poses."""
        d = self.data
        d.qpos[:] = qpos
        q = np.clip(np.asarray(q_arm, np.float64).copy(), self.lo, self.hi)
        w = self.rot_weight
        n = len(q)
        rows = 3 + (3 if rot is not None else 0)
        # one preallocated least-squares system: position rows, orientation rows, rest-posture rows
        err = np.zeros(rows + (n if rest is not None else 0))
        jac = np.zeros((len(err), n))
        if rest is not None:
            jac[rows:] = rest_weight * np.eye(n)
        reg = self.damping ** 2 * np.eye(len(err))
        err_p = np.inf
        for _ in range(iterations):
            d.qpos[self.qadr] = q
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            err[0:3] = pos - d.site_xpos[self.site]
            err_p = float(np.linalg.norm(err[0:3]))
            mujoco.mj_jacSite(self.model, d, self._jp, self._jr, self.site)
            jac[0:3] = self._jp[:, self.dadr]
            if rot is not None:
                r = d.site_xmat[self.site].reshape(3, 3)
                # sum_i r_i x rot_i (columns) = vee(rot r^T - r rot^T): the small-angle rotation error
                s = rot @ r.T - r @ rot.T
                err[3:6] = w * 0.5 * np.array([s[2, 1], s[0, 2], s[1, 0]])
                jac[3:6] = w * self._jr[:, self.dadr]
            if np.abs(err[:rows]).max() < 2e-4:
                break
            if rest is not None:
                err[rows:] = rest_weight * (rest - q)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + reg, err)
            q = np.clip(q + np.clip(dq, -self.max_step, self.max_step), self.lo, self.hi)
            if np.abs(dq).max() < STEP_TOL:       # converged to the damped least-squares compromise
                break
        return q, err_p

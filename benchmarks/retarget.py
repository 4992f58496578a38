"""Retargeting throughput: batched arm IK and hand retargeting vs naive per-frame scipy.optimize baselines.

Run: python benchmarks/retarget.py [--frames 3000] [--baseline-frames 60]. Last line: one JSON object.
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py shadows the stdlib `tokenize` for scripts in this folder: drop the folder from the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.retarget.arm_ik import arm_chain, arm_fk, solve_ik  # noqa: E402
from converters.retarget.hands import (HandRetargetConfig, _robot_vectors, _targets, dex3_model,  # noqa: E402
                                       retarget_hand, robot_keypoints25)


def _traj(lo, hi, n, seed, frac=0.5):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, n / 30.0, n)[:, None]
    return (lo + hi) / 2 + (hi - lo) / 2 * frac * np.sin(t * rng.uniform(0.3, 1.5, len(lo)) + rng.uniform(0, 6, len(lo)))


def _numpy_fk(chain, x):
    """Plain numpy FK of a serial chain's end frame (the baseline must not pay torch call overhead)."""
    t = np.eye(4)
    for j, (joint, qi) in enumerate(zip(chain.joints, x)):
        a = np.asarray(joint.axis)
        k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
        r = np.eye(4)
        r[:3, :3] = np.eye(3) + np.sin(qi) * k + (1 - np.cos(qi)) * (k @ k)
        t = t @ joint.origin @ r
    return t


def naive_arm(chain, targets):
    """Per-frame scipy least_squares on the 6-D pose residual (numpy FK), warm-started from the previous frame."""
    q = np.array([0.0, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0])
    out = []
    lo, hi = chain.lower.numpy(), chain.upper.numpy()
    for tgt in targets:
        def res(x, tgt=tgt):
            end = _numpy_fk(chain, x)
            rot = 0.5 * sum(np.cross(end[:3, i], tgt[:3, i]) for i in range(3))
            return np.concatenate([tgt[:3, 3] - end[:3, 3], 0.3 * rot])
        q = least_squares(res, np.clip(q, lo, hi), bounds=(lo, hi)).x
        out.append(q)
    return np.array(out)


def naive_hand(model, kp, scale=1.0):
    lo, hi = model.chain.lower.numpy(), model.chain.upper.numpy()
    q = (lo + hi) / 2
    out = []
    for frame in kp:
        ht, hm, hp = _targets(model, torch.as_tensor(frame[None]))

        def res(x):
            rt, rm, rp = _robot_vectors(model, torch.as_tensor(x[None]))
            return torch.cat([(rt - scale * ht).flatten(), 0.5 ** 0.5 * (rm - scale * hm).flatten(),
                              (rp - scale * hp).flatten()]).numpy()
        q = least_squares(res, q, bounds=(lo, hi)).x
        out.append(q)
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--baseline-frames", type=int, default=60)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    n, nb = args.frames, args.baseline_frames
    chain = arm_chain("left")
    q = _traj(chain.lower.numpy(), chain.upper.numpy(), n, 0)
    targets = arm_fk("left", q)
    solve_ik(chain, targets[:50])                                       # warm-up
    t0 = time.perf_counter()
    res = solve_ik(chain, targets)
    arm_fps = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    naive_q = naive_arm(chain, targets[:nb])
    naive_arm_fps = nb / (time.perf_counter() - t0)
    naive_err = np.linalg.norm(arm_fk("left", naive_q)[:, :3, 3] - targets[:nb, :3, 3], axis=-1)

    model = dex3_model("left")
    qh = _traj(model.chain.lower.numpy(), model.chain.upper.numpy(), n, 1, 0.7)
    kp = robot_keypoints25(model, qh)
    retarget_hand(model, kp[:50], HandRetargetConfig(scale=1.0))
    t0 = time.perf_counter()
    hres = retarget_hand(model, kp, HandRetargetConfig(scale=1.0))
    hand_fps = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    naive_h = naive_hand(model, kp[:nb])
    naive_hand_fps = nb / (time.perf_counter() - t0)

    out = {
        "frames": n, "baseline_frames": nb, "torch_threads": torch.get_num_threads(),
        "arm_ik_fps": round(arm_fps, 1), "arm_ik_naive_scipy_fps": round(naive_arm_fps, 1),
        "arm_ik_speedup": round(arm_fps / naive_arm_fps, 1),
        "arm_pos_err_p95_m": float(np.percentile(res.position_error, 95)),
        "arm_naive_pos_err_p95_m": float(np.percentile(naive_err, 95)),
        "hand_dex3_fps": round(hand_fps, 1), "hand_naive_scipy_fps": round(naive_hand_fps, 1),
        "hand_speedup": round(hand_fps / naive_hand_fps, 1),
        "hand_angle_err_mean_rad": float(np.abs(hres.q - qh).mean()),
        "hand_naive_angle_err_mean_rad": float(np.abs(naive_h - qh[:nb]).mean()),
    }
    print(f"arm IK: {arm_fps:.0f} frames/s batched vs {naive_arm_fps:.0f} naive ({out['arm_ik_speedup']}x); "
          f"hands: {hand_fps:.0f} vs {naive_hand_fps:.0f} ({out['hand_speedup']}x)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

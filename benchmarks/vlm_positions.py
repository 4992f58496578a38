"""Qwen3-VL's per-image position bookkeeping: psi0's cached tables vs transformers' own code path.

Both sides run the same System2 (the same weights, inputs and outputs, bit for bit: tests/test_qwen3vl_grids.py);
"transformers" has psi0's caches removed (`fast_pos_embed_interpolate`, `rot_pos_emb` and the vision
attention back to the class's methods, M-RoPE ids left to `get_rope_index`). Timed per batch:

  features   System2.features under no_grad (what stage 2 and every served chunk run)
  stage2     a whole stage-2 training step of the policy (features + expert flow loss + backward + AdamW)

1 torch thread, a warm-up, then rounds alternating which side runs first; median and range of the per-round
medians. Last line: one JSON object with the ratios (transformers / psi0).

Run: python benchmarks/vlm_positions.py [--batch 32] [--cams 1] [--size 32x32] [--rounds 5] [--iters 20]
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def _uncached(policy) -> None:
    """Back to transformers' own methods (the state before training/model/qwen3vl_grids.py)."""
    visual = policy.system2.model.model.visual
    del visual.fast_pos_embed_interpolate, visual.rot_pos_emb
    for block in visual.blocks:
        del block.attn.forward
    policy.system2._mrope = lambda *_a: None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--cams", type=int, default=1)
    ap.add_argument("--size", default="32x32", help="HxW of the camera images (default 32x32: the quick recipe's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20, help="timed batches per side and round")
    args = ap.parse_args()

    import torch

    from training.model.policy import PolicyConfig, Psi0Policy

    torch.set_num_threads(1)
    h, w = (int(v) for v in args.size.split("x"))
    cfg = PolicyConfig.load("tiny")
    gen = torch.Generator().manual_seed(0)
    batch = {"images": torch.randint(0, 256, (args.batch, args.cams, 3, h, w), dtype=torch.uint8, generator=gen),
             "task": ["lift the box with both hands"] * args.batch,
             "actions": torch.randn(args.batch, cfg.horizon, cfg.action_dim, generator=gen),
             "state": torch.randn(args.batch, cfg.state_dim, generator=gen)}
    sides = {}
    for name in ("psi0", "transformers"):
        policy = Psi0Policy.build(cfg).set_stage(2)
        if name == "transformers":
            _uncached(policy)
        opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
        sides[name] = (policy, opt)

    def features(policy, _opt) -> None:
        with torch.no_grad():
            policy.system2.features(batch, cfg.feature_layers)

    def stage2(policy, opt) -> None:
        loss, _ = policy.loss(batch, 2, generator=torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        a = sides["psi0"][0].system2.features(batch, cfg.feature_layers)[0]
        b = sides["transformers"][0].system2.features(batch, cfg.feature_layers)[0]
    same = bool(torch.equal(a, b))
    results: dict[str, dict[str, list[float]]] = {k: {"psi0": [], "transformers": []} for k in ("features", "stage2")}
    for what, fn in (("features", features), ("stage2", stage2)):
        for side in sides.values():
            for _ in range(3):
                fn(*side)                                     # warm-up
        for r in range(args.rounds):
            order = ["psi0", "transformers"] if r % 2 == 0 else ["transformers", "psi0"]
            for name in order:
                times = []
                for _ in range(args.iters):
                    t = time.perf_counter()
                    fn(*sides[name])
                    times.append(time.perf_counter() - t)
                results[what][name].append(statistics.median(times) * 1e3)
    out = {"benchmark": "vlm_positions", "batch": args.batch, "cams": args.cams, "size": args.size,
           "features_equal": same}
    for what, by in results.items():
        for name, ms in by.items():
            print(f"{what:9s} {name:13s} median {statistics.median(ms):7.1f} ms  range {min(ms):.1f}-{max(ms):.1f}")
            out[f"{what}_{name}_ms"] = round(statistics.median(ms), 2)
        out[f"{what}_vs_transformers"] = round(statistics.median(by["transformers"]) / statistics.median(by["psi0"]), 2)
    print(json.dumps(out))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

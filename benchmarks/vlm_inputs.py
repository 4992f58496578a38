"""System-2 input building: psi0's tensor path vs transformers' Qwen3VLProcessor, same batch.

  (a) psi0: `System2.build_inputs` -- uint8 camera tensors -> resize/normalise/patchify in torch,
      cached prompt ids, labels for the action tokens (what every training step runs)
  (b) transformers 4.57: `processor.apply_chat_template` + `Qwen3VLProcessor(text, images)` with
      `Qwen2VLImageProcessor` (numpy / PIL), then the action tokens appended -- the reference's path
  (c) the same with `Qwen2VLImageProcessorFast` (torchvision)

Images 240x320 (Psi0's fine-tuning size; Qwen's rule resizes them to 256x320 = 80 tokens per camera).
The tokenizer is the offline tiny one (text cost is small next to images either way).
Run: python benchmarks/vlm_inputs.py [--batch 16] [--cams 2] [--reps 5]. Last line: one JSON object.
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from training.model.system2 import VisionPreprocess  # noqa: E402
from training.model.tiny import tiny_system2  # noqa: E402

TASKS = ["pick up the red cup and place it on the tray", "open the drawer with the left hand",
         "wave hello with the right hand", "push the cart to the table"]


def best_of(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cams", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: fair vs numpy)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    s2 = tiny_system2(seed=0)
    s2.vision = VisionPreprocess()  # the real Qwen3-VL-2B preprocessing settings
    from transformers import Qwen2VLImageProcessorFast

    proc = s2.processor()
    v = s2.vision
    proc_fast = type(proc)(image_processor=Qwen2VLImageProcessorFast(
        patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size, merge_size=v.merge_size,
        image_mean=list(v.image_mean), image_std=list(v.image_std), min_pixels=v.min_pixels, max_pixels=v.max_pixels),
        tokenizer=s2.tokenizer, video_processor=proc.video_processor, chat_template=proc.chat_template)
    g = torch.Generator().manual_seed(0)
    b, c = args.batch, args.cams
    images = torch.randint(0, 256, (b, c, 3, 240, 320), dtype=torch.uint8, generator=g)
    tasks = [TASKS[i % len(TASKS)] for i in range(b)]
    tokens = torch.randint(0, 128, (b, 64), generator=g)
    tokens_len = torch.randint(20, 64, (b,), generator=g)

    def ours():
        return s2.build_inputs(images, tasks, tokens, tokens_len)

    def hf(p):
        def run():
            texts = []
            for t in tasks:
                msg = [{"role": "user", "content": [{"type": "image"}] * c + [{"type": "text", "text": t}]}]
                texts.append(p.apply_chat_template(msg, add_generation_prompt=True, tokenize=False))
            out = p(text=texts, images=[img for row in images for img in row], return_tensors="pt",
                    padding=True, padding_side="left")
            acts = [s2.token_map.to_vlm(tokens[i, : tokens_len[i]]) for i in range(b)]
            return out, acts
        return run

    t_ours = best_of(ours, args.reps)
    t_hf = best_of(hf(proc), args.reps)
    t_fast = best_of(hf(proc_fast), args.reps)
    ref = proc(text=[proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}] * c + [
        {"type": "text", "text": tasks[0]}]}], add_generation_prompt=True, tokenize=False)],
        images=list(images[0]), return_tensors="pt")
    mine = s2.build_inputs(images[:1], tasks[:1])
    pix_err = float((mine["pixel_values"] - ref["pixel_values"]).abs().mean())
    same_ids = bool(torch.equal(mine["input_ids"][0, :-1], ref["input_ids"][0]))
    for name, t in (("psi0 build_inputs", t_ours), ("HF Qwen3VLProcessor (slow image proc)", t_hf),
                    ("HF Qwen3VLProcessor (fast image proc)", t_fast)):
        print(f"{name:40s} {t * 1e3:8.1f} ms / batch of {b}x{c} cams  ({b / t:7.1f} samples/s)")
    print(f"ids identical: {same_ids}; mean |pixel diff| vs slow processor (resize path): {pix_err:.4f}")
    print(json.dumps({"batch": b, "cams": c, "psi0_ms": round(t_ours * 1e3, 2), "hf_slow_ms": round(t_hf * 1e3, 2),
                      "hf_fast_ms": round(t_fast * 1e3, 2), "vs_hf_slow": round(t_hf / t_ours, 2),
                      "vs_hf_fast": round(t_fast / t_ours, 2), "ids_identical": same_ids,
                      "pixel_mean_abs_diff": round(pix_err, 5)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Baselines on the same shards: ACT and Diffusion Policy from LeRobot 0.4.4, trained by LeRobot's own
training code (`lerobot.scripts.lerobot_train.train`) reading a psi0 shard through `LeRobotDataset` (every
psi0 LeRobot-format shard is a complete LeRobot v3 dataset), and evaluated by `psi0 eval --lerobot DIR`
through `LeRobotChunkPolicy`, the same RTC engine and episode loop as our policy.

What the baselines see: the camera and `observation.state` (PSI0_STATE), i.e. the image mode. The
privileged state cannot reach them from scratch: LeRobot 0.4.4's training loop applies `rename_map` (the
way to present `observation.state_privileged` as its `observation.environment_state`) only when it
fine-tunes a pretrained policy, and ACT / Diffusion read the environment state under that one key. They
predict chunks of absolute 36-D actions and have no committed-prefix input, so they run as naive chunking
(`max_delay` 1: d = 0 only). No hub access: the ResNet backbones start from random weights
(`pretrained_backbone_weights=None`), and images enter as [0, 1] pixels (psi0 shards hold no image stats).

pi0.5 and GR00T N1.6 are documented in docs/eval.md (they need their hub weights).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deploy.bundle import ObservationSchema, camera_short_name
from schemas.actions import PSI0_ACTION, PSI0_STATE
from schemas.names import ACTION, STATE

SCHEMA_FILE = "psi0_schema.json"
KINDS = ("act", "diffusion")


def _shard_info(shard: Path) -> dict[str, Any]:
    return json.loads((Path(shard) / "meta" / "info.json").read_text())


def lerobot_config(kind: str, shard: Path, out: Path, steps: int, batch_size: int = 8, horizon: int = 16,
                   seed: int = 0):
    """LeRobot's TrainPipelineConfig for ACT or Diffusion Policy on one psi0 shard (CPU, no hub)."""
    from lerobot.configs.default import DatasetConfig, WandBConfig  # noqa: PLC0415
    from lerobot.configs.train import TrainPipelineConfig  # noqa: PLC0415
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature  # noqa: PLC0415
    info = _shard_info(shard)
    feats = info["features"]
    cams = [k for k, f in feats.items() if f["dtype"] == "video"]
    inputs = {STATE: PolicyFeature(FeatureType.STATE, tuple(feats[STATE]["shape"]))}
    for cam in cams:
        h, w, c = feats[cam]["shape"]
        inputs[cam] = PolicyFeature(FeatureType.VISUAL, (c, h, w))
    outputs = {ACTION: PolicyFeature(FeatureType.ACTION, tuple(feats[ACTION]["shape"]))}
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig  # noqa: PLC0415
        policy = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=horizon, n_action_steps=horizon,
                           pretrained_backbone_weights=None, device="cpu", push_to_hub=False, dim_model=128,
                           dim_feedforward=512, n_encoder_layers=2, n_decoder_layers=1, use_vae=False)
    elif kind == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig  # noqa: PLC0415
        h, w = feats[cams[0]]["shape"][:2]
        policy = DiffusionConfig(input_features=inputs, output_features=outputs, horizon=horizon,
                                 n_action_steps=horizon // 2, n_obs_steps=2, crop_shape=(h - h % 8, w - w % 8),
                                 pretrained_backbone_weights=None, use_group_norm=True, device="cpu",
                                 push_to_hub=False, down_dims=(64, 128), num_inference_steps=10,
                                 diffusion_step_embed_dim=64)
    else:
        raise ValueError(f"kind must be one of {KINDS}")
    # psi0 shards carry no image statistics: images enter as [0, 1] pixels (IDENTITY), not ImageNet-normalized
    policy.normalization_mapping = {**policy.normalization_mapping, "VISUAL": NormalizationMode.IDENTITY}
    return TrainPipelineConfig(dataset=DatasetConfig(repo_id=f"psi0/{Path(shard).name}", root=str(shard),
                                                     video_backend="pyav", use_imagenet_stats=False),
                               policy=policy, output_dir=Path(out), steps=steps, batch_size=batch_size, num_workers=0,
                               save_freq=steps, log_freq=max(1, steps // 5), seed=seed,
                               wandb=WandBConfig(enable=False), eval_freq=0)


def train_lerobot(kind: str, shard: str | Path, out: str | Path, steps: int = 20, batch_size: int = 8,
                  horizon: int = 16) -> Path:
    """Train with LeRobot's training loop; returns the pretrained_model dir (+ psi0_schema.json beside it)."""
    from lerobot.scripts.lerobot_train import train  # noqa: PLC0415
    shard, out = Path(shard), Path(out)
    cfg = lerobot_config(kind, shard, out, steps, batch_size, horizon)
    train(cfg)
    model = out / "checkpoints" / "last" / "pretrained_model"
    if not model.is_dir():
        raise FileNotFoundError(f"LeRobot did not write {model}")
    info = _shard_info(shard)
    feats = info["features"]
    key = STATE
    cams = tuple(k for k, f in feats.items() if f["dtype"] == "video")
    h, w = feats[cams[0]]["shape"][:2]
    chunk = horizon if kind == "act" else horizon // 2
    schema = ObservationSchema(state_key=key, state_names=tuple(feats[key]["names"]), cameras=cams, image_size=(h, w),
                               action_names=tuple(feats[ACTION]["names"]), horizon=chunk, fps=float(info["fps"]),
                               max_delay=1, source=f"lerobot-{kind}")
    (model / SCHEMA_FILE).write_text(json.dumps(schema.to_json(), indent=1))
    return model


class LeRobotChunkPolicy:
    """A trained LeRobot policy as the RTC engine's ChunkPolicy (naive chunking: the prefix is ignored)."""

    def __init__(self, model_dir: str | Path):
        import torch  # noqa: PLC0415
        from lerobot.configs.policies import PreTrainedConfig  # noqa: PLC0415
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors  # noqa: PLC0415
        model_dir = Path(model_dir)
        if not (model_dir / SCHEMA_FILE).is_file():
            raise FileNotFoundError(f"{model_dir}: no {SCHEMA_FILE} (train it with deploy.baselines.train_lerobot)")
        self.schema = ObservationSchema.from_json(json.loads((model_dir / SCHEMA_FILE).read_text()))
        cfg = PreTrainedConfig.from_pretrained(model_dir)
        cfg.device = "cpu"
        self.kind = cfg.type
        self.policy = get_policy_class(cfg.type).from_pretrained(model_dir, config=cfg).eval()
        self.pre, self.post = make_pre_post_processors(cfg, pretrained_path=str(model_dir))
        self.torch = torch

    def batch(self, obs: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        state = np.asarray(obs["state"], np.float32)
        out: dict[str, Any] = {STATE: torch.from_numpy(state[: PSI0_STATE.size])[None]}
        for cam in self.schema.cameras:
            img = obs["images"].get(cam, obs["images"].get(camera_short_name(cam)))
            out[cam] = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
        out["task"] = [str(obs.get("instruction", ""))]
        return out

    def reset(self) -> None:
        self.policy.reset()

    def __call__(self, obs: dict[str, Any], prefix: np.ndarray, delay: int) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            batch = self.pre(self.batch(obs))
            if self.kind == "diffusion":
                from lerobot.policies.utils import populate_queues  # noqa: PLC0415
                from lerobot.utils.constants import OBS_IMAGES  # noqa: PLC0415
                batch = dict(batch)
                batch[OBS_IMAGES] = torch.stack([batch[k] for k in self.policy.config.image_features], dim=-4)
                self.policy._queues = populate_queues(self.policy._queues, batch)
            chunk = self.policy.predict_action_chunk(batch)
            chunk = self.post(chunk)
        a = chunk[0].float().cpu().numpy()
        if a.shape[0] < self.schema.horizon:
            a = np.concatenate([a, np.repeat(a[-1:], self.schema.horizon - a.shape[0], 0)])
        return a[: self.schema.horizon, : PSI0_ACTION.size]


def main(argv: list[str] | None = None) -> int:
    """python -m deploy.baselines train act SHARD OUT --steps 20"""
    import argparse  # noqa: PLC0415
    ap = argparse.ArgumentParser(prog="python -m deploy.baselines", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("train",))
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("shard", help="one psi0 LeRobot-format shard dir (OUT/shards/teleop-00000)")
    ap.add_argument("out", help="LeRobot output dir (must not exist)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--horizon", type=int, default=16)
    args = ap.parse_args(argv)
    model = train_lerobot(args.kind, args.shard, args.out, args.steps, args.batch_size, args.horizon)
    print(json.dumps({"model": str(model), "eval": f"psi0 eval --lerobot {model} --tasks ..."}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

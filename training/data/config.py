"""What a training sample looks like: horizon, cameras, image size, normalization, padding."""
from __future__ import annotations

from dataclasses import dataclass

from schemas.actions import BATCH_PAD_DIM
from schemas.names import ACTION, ACTION_TOKENS, ACTION_TOKENS_LEN, STATE
from shards import formats
from training.data import representation

ACTION_MASK = "action.mask"

NORMALIZATIONS = ("minmax", "quantile", "quantile_clip", "meanstd", "none")


@dataclass(frozen=True)
class DataConfig:
    """Sample layout shared by every source, so one batch can mix embodiments.

    Actions and state are padded to `pad_dim` (masks say which dims are real). `image_size=None`
    keeps the shard's native resolution. `action_keys` are concatenated in order; a key a source
    lacks (e.g. `action.lower_body` for EgoDex) is skipped for that source, and the mask shows it.
    """

    horizon: int = 30
    cameras: tuple[str, ...] = ("observation.images.egocentric",)
    image_size: tuple[int, int] | None = (240, 320)          # (H, W)
    normalization: str = "minmax"                             # minmax|quantile[_clip] -> [-1, 1]; meanstd; none
    pad_dim: int = BATCH_PAD_DIM
    max_tokens: int = 64
    format: str = "lerobot"                                   # preferred shard format; the twin is a fallback
    action_keys: tuple[str, ...] = (ACTION,)
    state_key: str = STATE
    tokens_key: str = ACTION_TOKENS
    tokens_len_key: str = ACTION_TOKENS_LEN
    cache_shards: int = 32          # per-process LRU of shards' columns held as numpy
    # per-process LRU of open video decoders, one per episode file (~2.8 MiB each at 64x48): 8 thrashed, and
    # 32 made a 40-episode run (the quick recipe) reopen a container for one sample in five (~10 ms a step)
    cache_videos: int = 64
    mask_key: str = ACTION_MASK     # per-frame validity of `action` dims (masked out of the loss), when present
    action_repr: str = representation.DEFAULT     # training.data.representation: absolute | he_joint_delta28
    tokenizer: str | None = None    # re-tokenize every shard with this FAST folder (one token space)
    tokenizer_stats: str | None = None   # q01/q99 for an authors' tokenizer folder

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.format not in formats.names():
            raise ValueError(f"format must be one of {formats.names()} (registered shard formats), got {self.format!r}")
        if self.horizon < 1 or self.pad_dim < 1 or self.max_tokens < 0:
            raise ValueError("horizon and pad_dim must be >= 1, max_tokens >= 0")
        rep = representation.get(self.action_repr)
        if rep.chunk is not None and rep.chunk != self.horizon:
            raise ValueError(f"action representation {rep.name} has chunk {rep.chunk}, the config horizon {self.horizon}")
        if rep.kind == "delta" and tuple(self.action_keys) != (ACTION,):
            raise ValueError(f"action representation {rep.name} is made of `{ACTION}` alone")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be (H, W) or None, got {self.image_size}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "action_keys", tuple(self.action_keys))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

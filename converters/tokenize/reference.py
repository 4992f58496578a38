"""Our reader of the FAST tokenizer folders the Ψ₀ authors release (physical-superintelligence-lab/Psi0
`src/fast/<name>/`, e.g. `egodex-rel-50w-1x48-v2048-s100`: relative (delta) EgoDex actions, ~500k fit
samples, 1 step x 48 dims, vocabulary 2048, scale 100).

Such a folder is what physical-intelligence/fast's `UniversalActionProcessor.save_pretrained` writes:
- `processor_config.json`: `action_dim`, `time_horizon`, `scale`, `vocab_size`, `min_token` (and
  `processor_class`, `auto_map`);
- `tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json`): a Hugging Face `tokenizers`
  BPE model with a ByteLevel pre-tokenizer and decoder.
Their encoding of an action chunk (T, D), which this module reproduces without their code:
DCT-II (orthonormal) along time; `round(coef * scale)`; flattened frequency-major (every dim's first
coefficient, then the second, ...); each integer k becomes the character `chr(max(k - min_token, 0))`;
the string goes through the BPE tokenizer. Decoding inverts it; a sequence whose coefficient count is
not a multiple of D is cut to one (their DCT early stopping), missing high frequencies are zero.

The authors feed it actions already normalised to [-1, 1] (bounds q01/q99, then clipped); the folder
does not carry those statistics, so they come with it: `stats` (their `assets/stats/*.json` layout,
`{key: {"q01": [...], "q99": [...]}}`, or a flat `{"q01", "q99"}`), saved as `psi0_stats.json` when we
copy the folder next to shards. The encoder then behaves like `FastTokenizer`: raw chunks in, ids out.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.fft import dct, idct

PROCESSOR_FILE = "processor_config.json"
BPE_FILE = "tokenizer.json"
STATS_FILE = "psi0_stats.json"
VERSION = "fast-universal-action-processor"


@dataclass
class ReferenceConfig:
    """The processor's settings in `FastConfig`'s vocabulary (horizon, dims, scale, q01/q99)."""

    horizon: int
    dims: int
    scale: float
    vocab_size: int
    min_token: int
    q01: list[float] = field(default_factory=list)
    q99: list[float] = field(default_factory=list)
    dim_names: list[str] = field(default_factory=list)
    version: str = VERSION

    @property
    def coefficients(self) -> int:
        return self.horizon * self.dims


def read_stats(path: str | Path | dict[str, Any], key: str | None = None) -> tuple[list[float], list[float]]:
    """(q01, q99) from an authors' stats file (`{key: {...}}`, the first key when `key` is None) or a flat dict."""
    data = json.loads(Path(path).read_text()) if not isinstance(path, dict) else path
    if "q01" not in data:
        if not data:
            raise ValueError(f"{path}: no statistics")
        data = data[key] if key is not None else data[sorted(data)[0]]
    return [float(v) for v in data["q01"]], [float(v) for v in data["q99"]]


class ReferenceFastTokenizer:
    """`FastTokenizer`'s interface over an authors' folder: `encode`, `decode`, `vocab_size`, `pad_id`,
    `max_abs_error_bound`, `save`, `load`."""

    def __init__(self, config: ReferenceConfig, tokenizer: Any, files: dict[str, bytes] | None = None) -> None:
        self.config = config
        self._tok = tokenizer
        self._files = dict(files or {})          # the folder's own files, written back by `save`
        if config.q01 and len(config.q01) != config.dims:
            raise ValueError(f"stats have {len(config.q01)} dims, the tokenizer {config.dims}")
        self._q01 = np.asarray(config.q01, np.float64) if config.q01 else None
        self._q99 = np.asarray(config.q99, np.float64) if config.q99 else None

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, directory: str | Path, stats: str | Path | dict | None = None) -> "ReferenceFastTokenizer":
        from tokenizers import Tokenizer

        directory = Path(directory)
        proc = json.loads((directory / PROCESSOR_FILE).read_text())
        missing = [k for k in ("action_dim", "time_horizon", "scale", "vocab_size", "min_token") if k not in proc]
        if missing:
            raise ValueError(f"{directory / PROCESSOR_FILE}: missing {missing}")
        if stats is None and (directory / STATS_FILE).is_file():
            stats = directory / STATS_FILE
        q01, q99 = read_stats(stats) if stats is not None else ([], [])
        cfg = ReferenceConfig(horizon=int(proc["time_horizon"]), dims=int(proc["action_dim"]),
                              scale=float(proc["scale"]), vocab_size=int(proc["vocab_size"]),
                              min_token=int(proc["min_token"]), q01=q01, q99=q99)
        files = {f.name: f.read_bytes() for f in sorted(directory.iterdir()) if f.is_file() and f.name != STATS_FILE}
        return cls(cfg, Tokenizer.from_file(str(directory / BPE_FILE)), files)

    def save(self, directory: str | Path) -> Path:
        """The same folder (the authors' files, byte for byte) plus `psi0_stats.json` when stats are known."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if not self._files:
            raise ValueError("this tokenizer was not loaded from a folder")
        for name, blob in self._files.items():
            (out / name).write_bytes(blob)
        if self._q01 is not None:
            (out / STATS_FILE).write_text(json.dumps({"q01": self.config.q01, "q99": self.config.q99}) + "\n")
        return out

    # ------------------------------------------------------------------ normalization
    def _normalize(self, chunks: np.ndarray) -> np.ndarray:
        if self._q01 is None:
            raise ValueError("this authors' FAST folder carries no normalisation statistics: pass them "
                             "(--tokenizer-stats FILE, e.g. their assets/stats/egodex_stat_all*.json)")
        half = np.where(self._q99 > self._q01, (self._q99 - self._q01) / 2, 1.0)
        return np.clip((chunks - self._q01) / half - 1.0, -1.0, 1.0)

    def _denormalize(self, norm: np.ndarray) -> np.ndarray:
        half = np.where(self._q99 > self._q01, (self._q99 - self._q01) / 2, 1.0)
        return (np.clip(norm, -1.0, 1.0) + 1.0) * half + self._q01

    # ------------------------------------------------------------------ public API
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def pad_id(self) -> int:
        return self.vocab_size

    @property
    def max_tokens(self) -> int:
        """Longest id sequence of a chunk: the BPE is byte-level, so a coefficient character above U+007F is
        2 bytes (3 above U+07FF) before merges; |DCT coefficient| <= sqrt(H) of a normalised chunk."""
        top = int(np.ceil(np.sqrt(self.config.horizon) * self.config.scale)) - self.config.min_token
        return self.config.coefficients * len(chr(max(top, 0)).encode("utf-8"))

    def texts(self, chunks: np.ndarray) -> list[str]:
        """Normalised (N, H, D) -> the processor's character strings (before BPE)."""
        coef = np.around(dct(np.asarray(chunks, np.float64), axis=1, norm="ortho") * self.config.scale)
        codes = np.maximum(coef.reshape(len(coef), -1) - self.config.min_token, 0).astype(np.int64)
        return ["".join(map(chr, row.tolist())) for row in codes]

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Raw (N, H, D) or (H, D) chunks -> token-id lists (normalised with the folder's stats first)."""
        chunks = np.asarray(chunks, np.float64)
        if chunks.ndim == 2:
            chunks = chunks[None]
        h, d = self.config.horizon, self.config.dims
        if chunks.shape[1:] != (h, d):
            raise ValueError(f"expected chunks of shape (*, {h}, {d}), got {chunks.shape}")
        if not np.isfinite(chunks).all():
            raise ValueError("chunks contain NaN/inf")
        return [e.ids for e in self._tok.encode_batch(self.texts(self._normalize(chunks)))]

    def decode(self, ids: Iterable[Sequence[int]], return_valid: bool = False):
        """Token ids -> raw (N, H, D) chunks; malformed sequences decode as far as they go (valid False)."""
        h, d = self.config.horizon, self.config.dims
        rows, valid = [], []
        for seq in ids:
            seq = [int(i) for i in np.asarray(seq).reshape(-1).tolist()]
            good = [i for i in seq if 0 <= i < self.vocab_size]
            codes = np.array([ord(c) for c in self._tok.decode(good)], np.float64) + self.config.min_token
            usable = codes[: len(codes) - len(codes) % d][: h * d]
            coef = np.zeros(h * d)
            coef[: len(usable)] = usable
            rows.append(coef.reshape(h, d))
            valid.append(len(good) == len(seq) and len(codes) == h * d)
        if not rows:
            out = np.zeros((0, h, d))
            return (out, np.zeros(0, bool)) if return_valid else out
        norm = idct(np.stack(rows) / self.config.scale, axis=1, norm="ortho")
        out = self._denormalize(norm) if self._q01 is not None else norm
        return (out, np.asarray(valid)) if return_valid else out

    def max_abs_error_bound(self) -> np.ndarray:
        """Per-dim bound on |decode(encode(x)) - x| for x within [q01, q99] (as FastTokenizer's)."""
        half = np.ones(self.config.dims) if self._q01 is None else np.where(
            self._q99 > self._q01, (self._q99 - self._q01) / 2, 1.0)
        return 0.5 / self.config.scale * np.sqrt(self.config.coefficients) * half

    def describe(self) -> dict[str, Any]:
        return asdict(self.config)

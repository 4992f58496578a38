"""FAST action tokenizer: q01/q99 normalise -> DCT-II over time -> scale & round -> BPE.

Pipeline per chunk (H steps x D dims):
1. x_n = clip(2 (x - q01) / (q99 - q01) - 1, -1, 1) per dim (dims with q99 == q01 pass through 0).
2. C = dct(x_n, axis=time, norm="ortho"): orthonormal, so coefficient errors map 1:1 (L2) to action errors.
3. k = round(C * scale), clipped to the fitted [min_coef, max_coef]; flattened low-frequency first
   (all dims' DC terms, then all first harmonics, ...), so truncated sequences lose high frequencies.
4. Each integer becomes one unicode character (code point `CHAR_BASE + k - min_coef`); a BPE model
   (HF `tokenizers`) fitted on a deterministic sample merges frequent runs into tokens.

Decoding reverses it; a sequence that decodes to the wrong number of coefficients is zero-padded or
truncated to H*D (high frequencies lost, never a crash), unknown ids are dropped, and every
chunk reports whether it needed that fallback.

Round-trip error bound: rounding moves each coefficient by <= 0.5/scale, so per chunk the
normalised L2 error is <= 0.5/scale * sqrt(H*D) and per element |err_n| <= 0.5/scale * sqrt(H*D)
as well; in action units multiply by (q99 - q01)/2 per dim (clipping at q01/q99 aside).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.fft import dct, idct

from schemas.actions import PSI0_ACTION

VERSION = "psi0.fast/1"
CHAR_BASE = 0x100          # skip ASCII / whitespace / control characters


@dataclass
class FastConfig:
    horizon: int = 16
    dims: int = PSI0_ACTION.size
    scale: float = 100.0
    vocab_size: int = 2048
    q01: list[float] = field(default_factory=list)
    q99: list[float] = field(default_factory=list)
    min_coef: int = 0
    max_coef: int = 0
    dim_names: list[str] = field(default_factory=list)
    version: str = VERSION

    @property
    def coefficients(self) -> int:
        return self.horizon * self.dims


class FastTokenizer:
    """Fit with `FastTokenizer.fit(chunks, ...)`, persist with `save(dir)` / `FastTokenizer.load(dir)`."""

    def __init__(self, config: FastConfig, tokenizer) -> None:
        self.config = config
        self._tok = tokenizer
        self._q01 = np.asarray(config.q01, dtype=np.float64)
        self._q99 = np.asarray(config.q99, dtype=np.float64)
        width = self._q99 - self._q01
        self._degenerate = width <= 0
        self._half = np.where(self._degenerate, 1.0, width / 2)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, chunks: np.ndarray, *, scale: float = 100.0, vocab_size: int = 2048,
            q01: np.ndarray | None = None, q99: np.ndarray | None = None, max_samples: int = 100_000,
            seed: int = 0, dim_names: Sequence[str] = ()) -> "FastTokenizer":
        """Fit stats (unless given) and BPE on a deterministic sample of `chunks` (N, H, D)."""
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.ndim != 3 or chunks.shape[0] == 0:
            raise ValueError(f"expected (N, H, D) chunks, got {chunks.shape}")
        if not np.isfinite(chunks).all():
            raise ValueError("chunks contain NaN/inf")
        n, h, d = chunks.shape
        if n > max_samples:
            idx = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
            chunks = chunks[idx]
        flat = chunks.reshape(-1, d)
        q01 = np.quantile(flat, 0.01, axis=0) if q01 is None else np.asarray(q01, np.float64)
        q99 = np.quantile(flat, 0.99, axis=0) if q99 is None else np.asarray(q99, np.float64)
        cfg = FastConfig(horizon=h, dims=d, scale=float(scale), vocab_size=int(vocab_size),
                         q01=[float(v) for v in q01], q99=[float(v) for v in q99], dim_names=list(dim_names))
        probe = cls(cfg, None)
        coefs = probe._coefficients(chunks)
        cfg.min_coef, cfg.max_coef = int(coefs.min()), int(coefs.max())
        alphabet = [chr(CHAR_BASE + i) for i in range(cfg.max_coef - cfg.min_coef + 1)]
        if len(alphabet) >= vocab_size:
            raise ValueError(f"coefficient range needs {len(alphabet)} symbols >= vocab_size {vocab_size}; "
                             f"lower scale or raise vocab_size")
        from tokenizers import Tokenizer, models, trainers
        tok = Tokenizer(models.BPE(unk_token=None))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                      initial_alphabet=alphabet, special_tokens=[], max_token_length=None)
        probe.config = cfg
        texts = [probe._to_text(row) for row in coefs]
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        return cls(cfg, tok)

    # ------------------------------------------------------------------ core transforms
    def _coefficients(self, chunks: np.ndarray) -> np.ndarray:
        """(N, H, D) -> (N, H*D) int coefficients, low frequency first (before range clipping)."""
        norm = np.clip((chunks - self._q01) / self._half - 1.0, -1.0, 1.0)
        norm = np.where(self._degenerate, 0.0, norm)
        c = dct(norm, axis=1, norm="ortho")
        return np.rint(c * self.config.scale).astype(np.int64).reshape(chunks.shape[0], -1)

    def _to_text(self, ints: np.ndarray) -> str:
        ints = np.clip(ints, self.config.min_coef, self.config.max_coef) - self.config.min_coef + CHAR_BASE
        return "".join(map(chr, ints.tolist()))

    # ------------------------------------------------------------------ public API
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def pad_id(self) -> int:
        """Id used to pad `action.tokens`: one past the largest real id."""
        return self.vocab_size

    @property
    def max_tokens(self) -> int:
        """Longest id sequence of a chunk (one character per coefficient, BPE only merges): `action.tokens` width."""
        return self.config.coefficients

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """(N, H, D) or (H, D) -> list of token-id lists (one per chunk)."""
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.ndim == 2:
            chunks = chunks[None]
        h, d = self.config.horizon, self.config.dims
        if chunks.shape[1:] != (h, d):
            raise ValueError(f"expected chunks of shape (*, {h}, {d}), got {chunks.shape}")
        if not np.isfinite(chunks).all():
            raise ValueError("chunks contain NaN/inf")
        texts = [self._to_text(row) for row in self._coefficients(chunks)]
        return [e.ids for e in self._tok.encode_batch(texts)]

    def decode(self, ids: Iterable[Sequence[int]], return_valid: bool = False):
        """Token ids -> (N, H, D) float chunks. Malformed sequences (unknown ids, wrong coefficient count)
        decode by dropping unknown ids and zero-padding / truncating coefficients; `return_valid`
        also returns a bool (N,) saying which sequences were well-formed."""
        h, d = self.config.horizon, self.config.dims
        n_coef = h * d
        vocab = self.vocab_size
        pieces = self._pieces()
        rows, valid = [], []
        for seq in ids:
            seq = [int(i) for i in np.asarray(seq).reshape(-1).tolist()] if not isinstance(seq, list) else seq
            good = [i for i in seq if isinstance(i, (int, np.integer)) and 0 <= i < vocab]
            text = "".join(pieces[i] for i in good)
            codes = np.fromiter((ord(ch) for ch in text), dtype=np.int64, count=len(text))
            ok = len(good) == len(seq) and codes.size == n_coef
            ints = codes - CHAR_BASE + self.config.min_coef
            in_range = (ints >= self.config.min_coef) & (ints <= self.config.max_coef)
            ok = ok and bool(in_range.all())
            ints = np.where(in_range, ints, 0)
            fixed = np.zeros(n_coef, dtype=np.float64)
            fixed[: min(n_coef, ints.size)] = ints[:n_coef]
            rows.append(fixed)
            valid.append(ok)
        if not rows:
            out = np.zeros((0, h, d))
            return (out, np.zeros(0, bool)) if return_valid else out
        coefs = np.stack(rows).reshape(-1, h, d) / self.config.scale
        norm = idct(coefs, axis=1, norm="ortho")
        out = np.where(self._degenerate, self._q01, (np.clip(norm, -1, 1) + 1.0) * self._half + self._q01)
        return (out, np.asarray(valid)) if return_valid else out

    def _pieces(self) -> list[str]:
        if getattr(self, "_piece_cache", None) is None:
            inv = {i: t for t, i in self._tok.get_vocab().items()}
            self._piece_cache = [inv.get(i, "") for i in range(self.vocab_size)]
        return self._piece_cache

    def max_abs_error_bound(self) -> np.ndarray:
        """Per-dim bound on |decode(encode(x)) - x| for x within [q01, q99] (action units)."""
        return 0.5 / self.config.scale * np.sqrt(self.config.coefficients) * self._half

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(out / "tokenizer.json"))
        cfg = asdict(self.config)
        (out / "config.json").write_text(json.dumps(cfg, sort_keys=True, indent=1) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> "FastTokenizer":
        from tokenizers import Tokenizer
        directory = Path(directory)
        cfg = json.loads((directory / "config.json").read_text())
        if cfg.get("version") != VERSION:
            raise ValueError(f"{directory}: unsupported tokenizer version {cfg.get('version')!r}")
        return cls(FastConfig(**cfg), Tokenizer.from_file(str(directory / "tokenizer.json")))


def pad_token_arrays(token_lists: Sequence[Sequence[int]], max_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ids -> (N, max_len) int32 padded with `pad_id` + (N,) int32 lengths (truncated at max_len),
    the fixed-shape `action.tokens` / `action.tokens_len` shard columns."""
    out = np.full((len(token_lists), max_len), pad_id, dtype=np.int32)
    lens = np.zeros(len(token_lists), dtype=np.int32)
    for i, ids in enumerate(token_lists):
        k = min(len(ids), max_len)
        out[i, :k] = np.asarray(ids[:k], dtype=np.int32)
        lens[i] = k
    return out, lens


def unpad_token_arrays(tokens: np.ndarray, lens: np.ndarray) -> list[list[int]]:
    return [tokens[i, : int(lens[i])].tolist() for i in range(len(lens))]

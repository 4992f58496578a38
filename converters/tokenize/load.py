"""Open any FAST tokenizer folder we can read, and name it by its content.

Two layouts: ours (`config.json` + `tokenizer.json`, `converters.tokenize.fast.FastTokenizer`) and the
Ψ₀ authors' (`processor_config.json` + `tokenizer.json`, `converters.tokenize.reference`). A token
space is named by `digest`: the sha256 of the folder's files, so two folders that tokenize the same way
byte for byte are one space and any other difference is another space (train never lets two different
tokenizers share action-token ids).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from converters.tokenize.fast import FastTokenizer
from converters.tokenize.reference import PROCESSOR_FILE, ReferenceFastTokenizer

CONFIG_FILE = "config.json"


def load_tokenizer(directory: str | Path, stats: str | Path | dict | None = None) -> Any:
    """`FastTokenizer` or `ReferenceFastTokenizer` from a folder (`stats`: normalisation statistics for an
    authors' folder that has none)."""
    directory = Path(directory)
    if (directory / PROCESSOR_FILE).is_file():
        return ReferenceFastTokenizer.load(directory, stats)
    if (directory / CONFIG_FILE).is_file():
        if stats is not None:
            raise ValueError(f"{directory}: our tokenizer folders carry their own statistics; drop the stats file")
        return FastTokenizer.load(directory)
    raise FileNotFoundError(f"{directory}: not a FAST tokenizer folder (no {CONFIG_FILE} nor {PROCESSOR_FILE})")


def digest(directory: str | Path) -> str:
    """sha256 over the folder's files (relative name and bytes, sorted): the tokenizer's identity."""
    h = hashlib.sha256()
    root = Path(directory)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def digest_of(tokenizer: Any) -> str:
    """`digest` of a loaded tokenizer, through the folder its `save` writes (deterministic bytes)."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="psi0-tokdigest-") as tmp:
        tokenizer.save(tmp)
        return digest(tmp)

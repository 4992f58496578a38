"""The Ψ₀ authors' FAST tokenizer folder (src/fast/<name>/ in physical-superintelligence-lab/Psi0): a folder
built here in their layout (what physical-intelligence/fast's UniversalActionProcessor.save_pretrained writes)
loads with our reader, encodes exactly as their processor does, and tokenizes EgoDex in the ingest job."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct

from converters.tokenize.load import digest, load_tokenizer
from converters.tokenize.reference import ReferenceFastTokenizer

DIMS, HORIZON, SCALE, MIN_TOKEN = 48, 1, 100, -100


def _normalised(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(scale=0.35, size=(n, HORIZON, DIMS)), -1, 1)


def _their_string(chunk: np.ndarray) -> str:
    """The processor's own encoding of one normalised (H, D) chunk before BPE (as its __call__ does)."""
    coef = np.around(dct(chunk, axis=0, norm="ortho") * SCALE)
    return "".join(map(chr, np.maximum(coef.flatten() - MIN_TOKEN, 0).astype(int)))


def write_authors_folder(root: Path, vocab_size: int = 300) -> Path:
    """A folder in the authors' layout: a ByteLevel BPE trained the processor's way (alphabet = every
    coefficient character), saved by transformers, plus processor_config.json."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    texts = [_their_string(c) for c in _normalised(1000, 1)]
    bpe = ByteLevelBPETokenizer()
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[],
                         initial_alphabet=[chr(i) for i in range(2 * SCALE + 1)], max_token_length=10000)
    bpe._tokenizer.train_from_iterator(texts, trainer=trainer)
    root.mkdir(parents=True)
    PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False).save_pretrained(root)
    (root / "processor_config.json").write_text(json.dumps({
        "action_dim": DIMS, "min_token": MIN_TOKEN, "processor_class": "UniversalActionProcessor", "scale": SCALE,
        "time_horizon": HORIZON, "vocab_size": vocab_size,
        "auto_map": {"AutoProcessor": "processing_action_tokenizer.UniversalActionProcessor"}}, indent=2))
    return root


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_authors_folder(tmp_path_factory.mktemp("fast") / "egodex-rel-test-1x48-v300-s100")


def _stats(tmp: Path, lo: float = -0.05, hi: float = 0.05) -> Path:
    """Their assets/stats layout: {key: {min, max, q01, q99, mean, std}}."""
    path = tmp / "egodex_stat.json"
    path.write_text(json.dumps({"egodex": {"q01": [lo] * DIMS, "q99": [hi] * DIMS, "min": [lo] * DIMS,
                                           "max": [hi] * DIMS, "mean": [0.0] * DIMS, "std": [0.02] * DIMS}}))
    return path


def test_reader_encodes_as_their_processor_and_round_trips(authors, tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = load_tokenizer(authors, _stats(tmp_path))
    assert isinstance(tok, ReferenceFastTokenizer)
    assert (tok.config.horizon, tok.config.dims, tok.config.scale, tok.config.min_token) == (HORIZON, DIMS, SCALE,
                                                                                             MIN_TOKEN)
    theirs = PreTrainedTokenizerFast(tokenizer_file=str(authors / "tokenizer.json"))
    raw = np.random.default_rng(2).uniform(-0.05, 0.05, (50, HORIZON, DIMS))
    normalised = (raw - -0.05) / 0.05 - 1.0
    ids = tok.encode(raw)
    assert ids == [theirs(_their_string(c))["input_ids"] for c in normalised]      # the processor's ids exactly
    back, valid = tok.decode(ids, return_valid=True)
    assert valid.all() and np.abs(back - raw).max() <= tok.max_abs_error_bound().max() + 1e-12
    assert max(len(i) for i in ids) <= tok.max_tokens == 2 * HORIZON * DIMS      # byte-level: 2 bytes a character
    # saved beside shards it keeps their files byte for byte, plus the statistics it was given
    copy = tok.save(tmp_path / "copy")
    for name in ("processor_config.json", "tokenizer.json"):
        assert (copy / name).read_bytes() == (authors / name).read_bytes()
    again = load_tokenizer(copy)
    assert again.encode(raw) == ids and digest(copy) != digest(authors)


def test_without_statistics_it_says_what_to_pass(authors):
    tok = load_tokenizer(authors)
    with pytest.raises(ValueError, match="--tokenizer-stats"):
        tok.encode(np.zeros((1, HORIZON, DIMS)))


def test_ingest_tokenizes_egodex_with_the_authors_folder(authors, tmp_path):
    """`psi0 ingest egodex --tokenizer DIR --tokenizer-stats FILE`: no fit, the folder is saved beside the
    shards (the catalog has its digest) and the episode's tokens decode back to its chunks."""
    from converters.tokenize.fast import unpad_token_arrays
    from converters.tokenize.load import digest_of
    from pipelines.stages import JobConfig, build_transforms, discover, fit_tokenizer, load
    from samples import egodex as egodex_sample

    egodex_sample.write_sample(tmp_path / "in", 0, (96, 64), episodes_per_task=1, seconds=0.6)
    stats = _stats(tmp_path, -0.02, 0.02)
    config = JobConfig(source="egodex", input=str(tmp_path / "in"), output=str(tmp_path / "out"), tokenize=True,
                       token_horizon=HORIZON, tokenizer=str(authors), tokenizer_stats=str(stats))
    refs = discover(config)
    tok = fit_tokenizer(refs, config)
    assert isinstance(tok, ReferenceFastTokenizer) and (tmp_path / "out" / "tokenizer" / "tokenizer.json").is_file()
    episode = load(refs[0], config, build_transforms(config, tok))
    chunks = config.source_impl.token_chunks(episode, HORIZON)
    tokens, lens = episode.column("action.tokens"), episode.column("action.tokens_len")
    assert tokens.shape[1] == tok.max_tokens and (lens <= tok.max_tokens).all()
    decoded = tok.decode(unpad_token_arrays(tokens, lens))
    assert np.abs(decoded - np.clip(chunks, -0.02, 0.02)).max() <= tok.max_abs_error_bound().max() + 1e-9
    assert digest_of(tok) == digest(tmp_path / "out" / "tokenizer")      # what finalize writes in the catalog
    assert config.to_json()["tokenizer"] == "given"

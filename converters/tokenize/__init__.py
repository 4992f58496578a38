"""Action tokenization (FAST: DCT + BPE) for autoregressive VLA heads."""
from converters.tokenize.fast import FastConfig, FastTokenizer, pad_token_arrays
from converters.tokenize.load import digest, digest_of, load_tokenizer

__all__ = ["FastConfig", "FastTokenizer", "digest", "digest_of", "load_tokenizer", "pad_token_arrays"]

"""Action tokenization (FAST: DCT + BPE) for autoregressive VLA heads."""
from converters.tokenize.fast import FastConfig, FastTokenizer, pad_token_arrays

__all__ = ["FastConfig", "FastTokenizer", "pad_token_arrays"]

"""The `tiny` system-2: a random small Qwen3-VL (2 text layers, 2 vision blocks) with a real, offline
byte-level BPE tokenizer carrying Qwen's special tokens in Qwen's order.

It is a user preset (`train --config tiny`: CI, laptops, smoke runs of the whole training path with no
model download) and what the model tests build on. The real backbone comes from a Qwen3-VL checkpoint
directory (`System2.from_pretrained`); nothing here is used by it.
"""
from __future__ import annotations

import torch

from training.model.system2 import QWEN_SPECIAL_TOKENS, System2, VisionPreprocess

TINY_CORPUS = (
    "pick up the red cup and place it on the tray", "open the drawer with the left hand",
    "close the fridge door", "wave hello with the right hand", "walk forward two steps and stop",
    "turn left and pick up the box", "hand the bottle to the person", "push the cart to the table",
    "fold the towel", "wipe the table with the sponge", "put the apple in the basket",
    "pour water into the glass", "squat down and grab the ball", "press the elevator button",
    "user", "assistant", "system", "You are a helpful robot.", "0123456789 .,;:!?-'\"()[]{}<>/\\|_+=*&^%$#@~`",
)
"""What the tiny tokenizer is trained on: task-like phrases, chat roles and every ASCII symbol."""


def tiny_tokenizer(vocab_size: int = 384):
    """A real byte-level BPE tokenizer (any text encodes) trained offline on TINY_CORPUS, with Qwen's
    special tokens appended in Qwen's order -- a stand-in for the Qwen2 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(TINY_CORPUS) * 4, trainer=trainer)
    tok.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    return Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None, errors="replace", clean_up_tokenization_spaces=False)


def tiny_config(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2, spare_rows: int = 64):
    """A small random Qwen3-VL config whose special-token ids match `tokenizer`."""
    from transformers import Qwen3VLConfig

    n = len(tokenizer)
    vocab = ((n + spare_rows + 63) // 64) * 64  # padded like the real checkpoint (rows past the tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    heads, head_dim = 4, hidden // 4
    text = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=2, head_dim=head_dim, max_position_embeddings=4096,
                rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None,
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                rope_scaling={"rope_type": "default", "mrope_interleaved": True,
                              "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8]})
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=hidden, num_position_embeddings=64,
                  deepstack_visual_indexes=[0])
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)


def tiny_system2(seed: int = 0, fast_vocab_size: int = 128, hidden: int = 64, layers: int = 2,
                 spare_rows: int = 64) -> System2:
    """Random small Qwen3-VL (2 text layers, 2 vision blocks) with a real offline tokenizer; the same seed
    gives the same weights."""
    from transformers import Qwen3VLForConditionalGeneration

    tokenizer = tiny_tokenizer()
    cfg = tiny_config(tokenizer, seed, hidden=hidden, layers=layers, spare_rows=spare_rows)
    cfg._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(cfg)
    vision = VisionPreprocess(min_pixels=32 * 32, max_pixels=512 * 512)
    return System2(model, tokenizer, vision, fast_vocab_size, seed=seed)

"""System-2 (Qwen3-VL wrapper): action-token map, prompt/label layout, parity with the HF processor,
checkpoint layout round trip, and a tiny model that learns and greedily decodes action tokens."""
import json

import pytest
import torch

from training.model.system2 import IGNORE, ActionTokenMap, System2, VisionPreprocess
from training.model.tiny import tiny_system2, tiny_tokenizer

TASKS = ["pick up the cup", "wave hello", "open the drawer", "pick up the cup"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return tiny_system2(seed=0)


def images(b: int, cams: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, cams, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_token_map_round_trip():
    tm = ActionTokenMap(first_id=151669, fast_vocab_size=2048)
    fast = torch.arange(2048)
    vlm = tm.to_vlm(fast)
    assert int(vlm.min()) == 151669 and int(vlm.max()) == 151669 + 2047
    assert torch.equal(tm.to_fast(vlm), fast)
    assert (tm.start_id, tm.end_id, tm.stop) == (151669 + 2048, 151669 + 2049, 151669 + 2050)
    # text ids and the markers are not action tokens
    other = torch.tensor([0, 151668, tm.start_id, tm.end_id])
    assert torch.equal(tm.to_fast(other), torch.full((4,), -1))
    with pytest.raises(ValueError):
        tm.to_vlm(torch.tensor([2048]))


def test_action_rows_grown_or_reused(tiny):
    tm = tiny.token_map
    assert tm.first_id == len(tiny_tokenizer())  # no text token is overwritten: the block starts after them
    assert len(tiny.tokenizer) == tm.stop        # ... and is named in the tokenizer (<|a_k|>, the two markers)
    rows = tiny.model.get_input_embeddings().weight.shape[0]
    assert rows >= tm.stop and rows % 64 == 0
    assert tiny.model.lm_head.weight is tiny.model.get_input_embeddings().weight  # still tied
    # a FAST vocabulary that fits in the checkpoint's padded rows reuses them: no resize
    small = tiny_system2(seed=0, fast_vocab_size=16)
    assert small.model.get_input_embeddings().weight.shape[0] == small.model.config.text_config.vocab_size
    assert small.token_map.stop <= small.model.get_input_embeddings().weight.shape[0]


def test_labels_only_on_action_tokens(tiny):
    b = 3
    toks = torch.randint(0, 128, (b, 10), generator=torch.Generator().manual_seed(1))
    toks[1, 4:] = 128  # FAST pad id beyond tokens_len must be ignored
    tl = torch.tensor([10, 4, 0])
    inp = tiny.build_inputs(images(b), TASKS[:b], toks, tl)
    ids, lab, att, c = inp["input_ids"], inp["labels"], inp["attention_mask"], inp["context_len"]
    tm = tiny.token_map
    assert (ids[:, c - 1] == tm.start_id).all() and (lab[:, :c] == IGNORE).all()
    for i in range(b):
        n = int(tl[i])
        assert torch.equal(tm.to_fast(ids[i, c: c + n]), toks[i, :n])
        assert int(ids[i, c + n]) == tm.end_id
        labelled = lab[i] != IGNORE
        assert int(labelled.sum()) == n + 1
        assert torch.equal(lab[i, labelled], ids[i, labelled])
        assert att[i, c + n + 1:].sum() == 0  # right padding after the end marker
    # prompts are left-padded so <action_start> sits in one column for every row
    assert att[:, : c].sum(1).tolist() == [len(tiny.prompt_ids(t, 2, 1)) + 1 for t in TASKS[:b]]


def test_matches_hf_processor(tiny):
    """Our tensor path == transformers' Qwen3VLProcessor on the chat template (ids, pixels, grid)."""
    proc = tiny.processor()
    imgs = images(1, cams=2, h=64, w=96)
    msg = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": TASKS[0]}]}]
    text = proc.apply_chat_template(msg, add_generation_prompt=True, tokenize=False)
    ref = proc(text=[text], images=[imgs[0, 0], imgs[0, 1]], return_tensors="pt")
    ours = tiny.build_inputs(imgs, TASKS[:1])
    assert torch.equal(ours["input_ids"][0, :-1], ref["input_ids"][0])  # ours adds <action_start>
    assert torch.equal(ours["image_grid_thw"], ref["image_grid_thw"])
    assert torch.allclose(ours["pixel_values"], ref["pixel_values"].float(), atol=1e-6)
    # a size that needs resizing: same grid, pixels within a couple of uint8 levels of PIL's bicubic
    imgs = images(1, cams=1, h=50, w=70)
    ref = proc.image_processor(images=[imgs[0, 0]], return_tensors="pt")
    pv, grid = tiny.vision(imgs[0])
    assert torch.equal(grid, ref["image_grid_thw"])
    assert (pv - ref["pixel_values"]).abs().mean() < 0.02


def test_vision_preprocess_real_sizes():
    v = VisionPreprocess()  # Qwen3-VL-2B defaults: patch 16, merge 2, >= 256*256 pixels
    assert v.target_size(240, 320) == (256, 320) and v.tokens_per_image(240, 320) == 80


def test_save_load_checkpoint_layout(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "preprocessor_config.json"):
        assert (tmp_path / f).is_file(), f
    assert json.loads((tmp_path / "psi0_system2.json").read_text())["fast_vocab_size"] == 128
    back = System2.from_pretrained(tmp_path)
    assert back.token_map == tiny.token_map and back.vision == tiny.vision
    # the checkpoint opens in transformers with its tokenizer: action tokens have the Psi0 authors' names
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    tm = tiny.token_map
    assert tok.convert_ids_to_tokens([tm.first_id, tm.first_id + 127, tm.start_id, tm.end_id]) == [
        "<|a_0|>", "<|a_127|>", "<|action_start|>", "<|action_end|>"]
    assert tok("<|action_start|><|a_5|><|a_17|><|action_end|>", add_special_tokens=False)["input_ids"] == [
        tm.start_id, tm.first_id + 5, tm.first_id + 17, tm.end_id]
    assert len(tok) == tm.stop <= back.model.get_input_embeddings().weight.shape[0]
    batch = {"images": images(2), "task": TASKS[:2]}
    with torch.no_grad():
        a, ma = tiny.eval().features(batch, layers=(0, -1))
        b, mb = back.eval().features(batch, layers=(0, -1))
    assert a.shape == (2, a.shape[1], 2 * tiny.hidden_size)
    assert torch.equal(ma, mb) and torch.allclose(a, b, atol=1e-5)


def test_features_exclude_action_tokens(tiny):
    """Context is causal: adding action tokens after the prompt leaves the features unchanged."""
    imgs = images(2)
    toks = torch.randint(0, 128, (2, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain, m1 = tiny.eval().features({"images": imgs, "task": TASKS[:2]}, layers=(-1,))
        inp = tiny.build_inputs(imgs, TASKS[:2], toks, torch.tensor([6, 3]))
        withtok, m2 = tiny.features({}, layers=(-1,), inputs=inp)
    assert torch.equal(m1, m2)
    assert torch.allclose(plain[m1], withtok[m2], atol=1e-5)


def test_stage1_memorizes_and_decodes():
    torch.manual_seed(0)
    s2 = tiny_system2(seed=0)
    g = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 128, (4, 12), generator=g)
    tl = torch.tensor([12, 7, 10, 9])
    batch = {"images": images(4, seed=3), "task": TASKS, "tokens": toks, "tokens_len": tl}
    opt = torch.optim.AdamW(s2.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(80):
        loss, metrics = s2.lm_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print("stage-1 token loss first/last:", losses[0], losses[-1], metrics)
    assert losses[0] / losses[-1] > 10
    out, n = s2.eval().generate_actions_tokens(batch["images"], TASKS, max_tokens=12)
    assert torch.equal(n, tl)
    for i in range(4):
        assert torch.equal(out[i, : tl[i]], toks[i, : tl[i]])
        assert (out[i, tl[i]:] == 128).all()


def test_truncated_pass_matches_full(tiny):
    """Features of an early layer computed without running later layers equal the full pass."""
    inp = tiny.build_inputs(images(2), TASKS[:2])
    with torch.no_grad():
        last, (early_full, last_again) = tiny.eval().run(inp, layers=(0, -1))
        none, (early_cut,) = tiny.run(inp, layers=(0,), need_last=False)
    assert none is None and torch.equal(last, last_again)
    assert torch.allclose(early_full, early_cut, atol=1e-6)
    assert len(tiny.model.model.language_model.layers) == tiny.num_layers  # stack restored


def test_tiny_is_deterministic(tiny):
    again = tiny_system2(seed=0)
    assert again.tokenizer.get_vocab() == tiny.tokenizer.get_vocab()
    a, b = tiny.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = tiny_system2(seed=1)
    assert not torch.equal(other.model.lm_head.weight, tiny.model.lm_head.weight)

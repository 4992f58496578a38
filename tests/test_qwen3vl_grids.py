"""training/model/qwen3vl_grids.py: the cached position tables equal transformers' own, bit for bit,
and the backbone's outputs and gradients do not change when System2 uses them."""
from __future__ import annotations

import pytest
import torch

from training.model.qwen3vl_grids import MRopePositions
from training.model.tiny import tiny_system2

GRIDS = [
    [[1, 2, 2]],
    [[1, 2, 2]] * 5,
    [[1, 4, 6], [1, 2, 2], [2, 4, 4], [1, 4, 6]],     # mixed sizes, a two-frame clip, a repeated grid
    [[1, 14, 10], [3, 2, 8]],
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_system2(seed=3)


def _originals(visual):
    cls = type(visual)
    return (lambda g: cls.fast_pos_embed_interpolate(visual, g)), (lambda g: cls.rot_pos_emb(visual, g))


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vision_tables_equal_transformers(tiny, grid, dtype):
    visual = tiny.model.model.visual
    g = torch.tensor(grid)
    orig_interp, orig_rot = _originals(visual)
    with torch.no_grad():
        saved = visual.pos_embed.weight.detach().clone()
        visual.pos_embed.weight.data = saved.to(dtype)
        try:
            for _ in range(2):                         # the first call fills the cache, the second reads it
                assert torch.equal(visual.fast_pos_embed_interpolate(g), orig_interp(g))
                assert torch.equal(visual.rot_pos_emb(g), orig_rot(g))
        finally:
            visual.pos_embed.weight.data = saved


def test_pos_embed_gradient_is_unchanged(tiny):
    visual = tiny.model.model.visual
    g = torch.tensor(GRIDS[2])
    orig_interp, _ = _originals(visual)
    w = torch.randn(int((g.prod(-1)).sum()), visual.pos_embed.weight.shape[1], generator=torch.Generator().manual_seed(0))
    grads = []
    for fn in (visual.fast_pos_embed_interpolate, orig_interp):
        visual.pos_embed.weight.grad = None
        (fn(g) * w).sum().backward()
        grads.append(visual.pos_embed.weight.grad.clone())
    visual.pos_embed.weight.grad = None
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("lengths", [[4] * 6, [4, 16, 4]])
def test_vision_attention_equals_transformers(tiny, lengths):
    """Equal patch counts take the batched call, unequal ones transformers' loop: both equal the original,
    values and input gradients."""
    visual = tiny.model.model.visual
    attn = visual.blocks[0].attn
    gen = torch.Generator().manual_seed(2)
    s, dim = sum(lengths), visual.config.hidden_size
    head = dim // visual.config.num_heads
    x = torch.randn(s, dim, generator=gen)
    cu = torch.tensor([0] + lengths).cumsum(0).to(torch.int32)
    emb = torch.randn(s, head, generator=gen)
    outs = []
    for fn in (attn.forward, lambda *a, **k: type(attn).forward(attn, *a, **k)):
        xi = x.clone().requires_grad_(True)
        y = fn(xi, cu, position_embeddings=(emb.cos(), emb.sin()))
        y.square().sum().backward()
        outs.append((y.detach(), xi.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def _images(b: int, cams: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (b, cams, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cams", [1, 2])
def test_mrope_ids_equal_get_rope_index(tiny, cams):
    tasks = ["fold the towel", "pick up the red cup and place it on the tray", "fold the towel", "wave"]
    tokens = torch.randint(0, 128, (4, 7), generator=torch.Generator().manual_seed(1))
    inner = tiny.model.model
    for with_tokens in (False, True):
        inputs = tiny.build_inputs(_images(4, cams, 0), tasks, tokens if with_tokens else None,
                                   torch.tensor([7, 0, 3, 5]) if with_tokens else None)
        want, _ = inner.get_rope_index(inputs["input_ids"], inputs["image_grid_thw"], None,
                                       attention_mask=inputs["attention_mask"])
        mrope = MRopePositions(tiny.model)
        for _ in range(2):
            got = mrope(inputs["input_ids"], inputs["attention_mask"], inputs["image_grid_thw"])
            assert got is not None and torch.equal(got, want)
        # one layout per distinct (task, number of action tokens): rows 0 and 2 share one without tokens
        assert len(mrope._rows) == (4 if with_tokens else 3)


def test_mrope_leaves_mixed_grids_to_transformers(tiny):
    inputs = tiny.build_inputs(_images(2, 1, 0), ["fold the towel"] * 2)
    grid = inputs["image_grid_thw"].clone()
    grid[1, 1] = 4
    assert MRopePositions(tiny.model)(inputs["input_ids"], inputs["attention_mask"], grid) is None


def test_features_and_gradients_equal_the_uncached_backbone(tiny):
    """The whole backbone with and without the caches: same features, same gradients."""
    batch = {"images": _images(3, 2, 5), "task": ["fold the towel", "wave hello with the right hand", "fold the towel"]}
    plain = tiny_system2(seed=3)
    visual = plain.model.model.visual
    del visual.fast_pos_embed_interpolate, visual.rot_pos_emb, visual.forward   # back to the class's methods
    for block in visual.blocks:
        del block.attn.forward
    plain._mrope = lambda *_a: None
    outs = []
    for s2 in (tiny, plain):
        s2.zero_grad()
        ctx, mask = s2.features(batch, layers=(-1,))
        ctx.square().sum().backward()
        outs.append((ctx.detach(), mask, {n: p.grad.clone() for n, p in s2.named_parameters() if p.grad is not None}))
    (c0, m0, g0), (c1, m1, g1) = outs
    assert torch.equal(c0, c1) and torch.equal(m0, m1)
    assert g0.keys() == g1.keys() and any("visual" in n for n in g0)
    for n in g0:
        assert torch.equal(g0[n], g1[n]), n


def test_vision_tower_reads_its_index_tensors_back_once_per_forward(tiny, monkeypatch):
    """Every `.tolist()` is a device-to-host sync on a GPU. A warm tower forward reads the grids once and the
    patch counts once, however many blocks it has (transformers' reads them in two builders and every block);
    a block called on its own still works, and a tensor changed in place between forwards is read again."""
    visual = tiny.model.model.visual
    assert len(visual.blocks) >= 2
    inputs = tiny.build_inputs(_images(2, 2, 7), ["fold the towel"] * 2)
    pixels, grid = inputs["pixel_values"], inputs["image_grid_thw"]
    reads = []
    real = torch.Tensor.tolist

    def counted(t):
        reads.append(tuple(t.shape))
        return real(t)

    visual(pixels, grid_thw=grid)                       # warm: fills the grid tables
    monkeypatch.setattr(torch.Tensor, "tolist", counted)
    want = visual(pixels, grid_thw=grid)[0]
    assert reads == [tuple(grid.shape), (grid.shape[0],)], reads
    reads.clear()
    assert torch.equal(visual(pixels, grid_thw=grid)[0], want) and len(reads) == 2
    monkeypatch.undo()
    wide = tiny.build_inputs(torch.randint(0, 256, (1, 1, 3, 32, 64), dtype=torch.uint8), ["wave"])
    pixels, grid = wide["pixel_values"], wide["image_grid_thw"].clone()
    assert grid[0, 1] != grid[0, 2]
    visual(pixels, grid_thw=grid)
    grid[0, 1], grid[0, 2] = int(grid[0, 2]), int(grid[0, 1])    # in place: the same patches, transposed
    assert torch.equal(visual(pixels, grid_thw=grid)[0], visual(pixels, grid_thw=grid.clone())[0])

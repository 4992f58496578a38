"""Flow-matching MM-DiT action expert (system-1) with training-time real-time chunking.

Two token streams -- action tokens and projected VLM context features -- attend jointly in every
block (SD3 MM-DiT) but keep separate QKV/MLP weights. Each block is modulated adaLN-Zero style by
an embedding of the flow time (per action token, so RTC prefixes can sit at t=0) plus the robot state.

Flow convention: x_t = t * noise + (1 - t) * action, velocity v = noise - action; sampling integrates
from t=1 (noise) to t=0 (action) with Euler steps. Training-time RTC: a per-sample delay d keeps the
first d actions clean (t=0) and masks them out of the loss; at sampling the prefix is hard-set each step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from schemas.actions import PSI0_ACTION, PSI0_STATE
from schemas.chunking import REFERENCE_CHUNKING


@dataclass(frozen=True)
class ActionExpertConfig:
    action_dim: int = PSI0_ACTION.size
    state_dim: int = PSI0_STATE.size
    context_dim: int = 2048
    horizon: int = 30
    hidden: int = 1536
    heads: int = 24
    ff: int = 2048
    depth: int = 24
    max_delay: int = REFERENCE_CHUNKING.max_delay    # training-time RTC: d in 0..max_delay-1 (schemas.chunking)
    time_sampling: str = "beta"  # "uniform" or "beta" (pi0-style, emphasises noisy times)

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, ActionExpertConfig] = {
    "tiny": ActionExpertConfig(action_dim=4, state_dim=4, context_dim=32, horizon=16,
                               hidden=64, heads=4, ff=128, depth=2),
    # the reference's action expert (Psi0ModelConfig): hidden 1536, 24 heads, feed-forward 2048, 6 blocks
    "full": ActionExpertConfig(hidden=1536, heads=24, ff=2048, depth=6),
    # 8 blocks: ~474 M parameters with our two-stream MM-DiT blocks, the size the paper quotes (~500 M)
    "full8": ActionExpertConfig(hidden=1536, heads=24, ff=2048, depth=8),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of flow time t in [0,1] (any shape) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class StreamWeights(nn.Module):
    """Per-stream parameters of one MM-DiT block: adaLN-Zero, QKV, output proj, MLP.
    `pre_only` (the context stream of the last block, as in SD3): only K/V are needed, so the
    output projection and MLP -- whose results nothing would read -- are not built."""

    def __init__(self, hidden: int, ff: int, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        if not pre_only:
            self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
            self.proj = nn.Linear(hidden, hidden)
            self.mlp = nn.Sequential(nn.Linear(hidden, ff), nn.GELU(approximate="tanh"), nn.Linear(ff, hidden))
        self.ada = nn.Linear(hidden, (2 if pre_only else 6) * hidden)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)


class MMDiTBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, ff: int, last: bool = False):
        super().__init__()
        self.heads = heads
        self.act = StreamWeights(hidden, ff)
        self.ctx = StreamWeights(hidden, ff, pre_only=last)
        self.q_norm = nn.RMSNorm(hidden // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(hidden // heads, eps=1e-6)

    def _qkv(self, s: StreamWeights, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor):
        b, n, h = x.shape
        qkv = s.qkv(modulate(s.norm1(x), shift, scale)).view(b, n, 3, self.heads, h // self.heads)
        q, k, v = qkv.unbind(2)
        return self.q_norm(q), self.k_norm(k), v

    def forward(self, a: torch.Tensor, c: torch.Tensor, cond_a: torch.Tensor, cond_c: torch.Tensor,
                ctx_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        # cond_a: (B, Na, H) per action token; cond_c: (B, 1, H) per sample
        ma = self.act.ada(F.silu(cond_a)).chunk(6, dim=-1)
        mc = self.ctx.ada(F.silu(cond_c)).chunk(2 if self.ctx.pre_only else 6, dim=-1)
        qa, ka, va = self._qkv(self.act, a, ma[0], ma[1])
        qc, kc, vc = self._qkv(self.ctx, c, mc[0], mc[1])
        na = a.shape[1]
        # the last block's context stream produces nothing that is read: only action queries
        q = (qa if self.ctx.pre_only else torch.cat([qa, qc], 1)).transpose(1, 2)
        k = torch.cat([ka, kc], 1).transpose(1, 2)
        v = torch.cat([va, vc], 1).transpose(1, 2)
        mask = None
        if ctx_mask is not None:  # (B, Nc) bool, True = valid context token
            valid = torch.cat([torch.ones(a.shape[0], na, dtype=torch.bool, device=a.device), ctx_mask], 1)
            mask = valid[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)
        oa, oc = o[:, :na], o[:, na:]  # oc is empty in a pre_only block
        a = a + ma[2] * self.act.proj(oa)
        a = a + ma[5] * self.act.mlp(modulate(self.act.norm2(a), ma[3], ma[4]))
        if not self.ctx.pre_only:
            c = c + mc[2] * self.ctx.proj(oc)
            c = c + mc[5] * self.ctx.mlp(modulate(self.ctx.norm2(c), mc[3], mc[4]))
        return a, c


class ActionExpert(nn.Module):
    """MM-DiT velocity field v(x_t, t | context, state) over an action chunk."""

    def __init__(self, cfg: ActionExpertConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.action_in = nn.Linear(cfg.action_dim, h)
        self.context_in = nn.Sequential(nn.LayerNorm(cfg.context_dim), nn.Linear(cfg.context_dim, h))
        self.pos = nn.Parameter(torch.randn(1, cfg.horizon, h) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(256, h), nn.SiLU(), nn.Linear(h, h))
        self.state_mlp = nn.Sequential(nn.Linear(cfg.state_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.blocks = nn.ModuleList(MMDiTBlock(h, cfg.heads, cfg.ff, last=i == cfg.depth - 1)
                                    for i in range(cfg.depth))
        self.final_norm = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(h, 2 * h)
        nn.init.zeros_(self.final_ada.weight)
        nn.init.zeros_(self.final_ada.bias)
        self.action_out = nn.Linear(h, cfg.action_dim)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, state: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B,H,A), t (B,H) per-token flow time, context (B,N,Dc), state (B,S) -> velocity (B,H,A)."""
        s = self.state_mlp(state)[:, None]  # (B,1,h)
        cond_a = self.time_mlp(timestep_embedding(t, 256)) + s  # (B,H,h)
        cond_c = self.time_mlp(timestep_embedding(t.mean(1, keepdim=True), 256)) + s  # (B,1,h)
        a = self.action_in(x_t) + self.pos[:, : x_t.shape[1]]
        c = self.context_in(context)
        for blk in self.blocks:
            a, c = blk(a, c, cond_a, cond_c, context_mask)
        shift, scale = self.final_ada(F.silu(cond_a)).chunk(2, dim=-1)
        return self.action_out(modulate(self.final_norm(a), shift, scale))

    def sample_time(self, b: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.cfg.time_sampling == "uniform":
            return torch.rand(b, device=device, generator=generator)
        # Beta(1.5, 1) on (1 - t): more mass near t=1 (noisy), as in pi0; clamp away from exact 0.
        u = torch.rand(b, device=device, generator=generator)
        return (1 - u ** (1 / 1.5)).mul(0.999).add(0.001)

    def loss(self, actions: torch.Tensor, context: torch.Tensor, state: torch.Tensor,
             pad_mask: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
             rtc: bool = True, generator: torch.Generator | None = None,
             dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Flow-matching MSE. pad_mask (B,H) True = real action; dim_mask (B,A) True = real action
        dimension (an embodiment without some joints has them zero-padded: they are not targets).
        With rtc, a random prefix of d ~ U{0..max_delay-1} actions is given clean (t=0) and excluded
        from the loss."""
        b, hz, _ = actions.shape
        dev = actions.device
        # what is not a target is not an input either: padded steps / missing dims enter as zeros
        if pad_mask is not None:
            actions = actions * pad_mask[..., None].to(actions.dtype)
        if dim_mask is not None:
            actions = actions * dim_mask[:, None, :].to(actions.dtype)
        noise = torch.randn(actions.shape, device=dev, generator=generator)
        t = self.sample_time(b, dev, generator)[:, None].expand(b, hz).clone()
        if rtc and self.cfg.max_delay > 1:
            d = torch.randint(0, self.cfg.max_delay, (b,), device=dev, generator=generator)
            prefix = torch.arange(hz, device=dev)[None] < d[:, None]
            t = torch.where(prefix, torch.zeros_like(t), t)
        else:
            prefix = torch.zeros(b, hz, dtype=torch.bool, device=dev)
        x_t = t[..., None] * noise + (1 - t[..., None]) * actions
        v = self(x_t, t, context, state, context_mask)
        w = (~prefix).float()
        if pad_mask is not None:
            w = w * pad_mask.float()
        sq = (v - (noise - actions)) ** 2
        if dim_mask is None:
            err = sq.mean(-1)
        else:
            dw = dim_mask.to(sq.dtype)[:, None, :]
            err = (sq * dw).sum(-1) / dw.sum(-1).clamp_min(1.0)
        return (err * w).sum() / w.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(self, context: torch.Tensor, state: torch.Tensor, prefix: torch.Tensor | None = None,
               delay: int = 0, steps: int = 10, context_mask: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Euler-integrate from noise to an action chunk (B,H,A). If prefix (B,>=delay,A) is given,
        its first `delay` actions are hard-set (and held at t=0) at every step."""
        b = context.shape[0]
        hz, ad = self.cfg.horizon, self.cfg.action_dim
        dev = context.device
        x = torch.randn(b, hz, ad, device=dev, generator=generator)
        fixed = torch.zeros(b, hz, dtype=torch.bool, device=dev)
        if prefix is not None and delay > 0:
            fixed[:, :delay] = True
            x[:, :delay] = prefix[:, :delay].to(x.dtype)
        dt = 1.0 / steps
        for i in range(steps):
            tv = 1.0 - i * dt
            t = torch.where(fixed, torch.zeros(b, hz, device=dev), torch.full((b, hz), tv, device=dev))
            v = self(x, t, context, state, context_mask)
            x = x - dt * v
            if prefix is not None and delay > 0:
                x[:, :delay] = prefix[:, :delay].to(x.dtype)
        return x


def count_params(cfg: ActionExpertConfig) -> int:
    """Parameter count without allocating memory (meta device)."""
    with torch.device("meta"):
        m = ActionExpert(cfg)
    return sum(p.numel() for p in m.parameters())

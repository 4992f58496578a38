"""RTC engine: committed prefixes are exactly what the robot executes during inference; late and
slow inference degrade gracefully; a trained expert with prefixes switches chunks smoothly."""
import dataclasses
import time

import numpy as np
import pytest
import torch

from deploy.expert_policy import ExpertChunkPolicy
from deploy.rtc import RTCConfig, RTCEngine, SteppedRunner, ThreadedRunner, run_realtime
from deploy.system0 import split_action
from schemas.actions import PSI0_ACTION
from training.model.action_expert import CONFIGS, ActionExpert

H, A = 16, 3


class OffsetPolicy:
    """A real chunk generator: a ramp with a fresh random offset per chunk; honours the prefix
    contract (rows < delay = prefix). Records every request so tests can audit it."""

    def __init__(self, seed=0, sleep_s=0.0):
        self.rng = np.random.default_rng(seed)
        self.requests = []
        self.sleep_s = sleep_s

    def __call__(self, obs, prefix, delay):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        self.requests.append((obs, np.array(prefix, copy=True), delay))
        chunk = self.rng.normal(size=(1, A)) + 0.01 * np.arange(H)[:, None] * np.ones((1, A))
        chunk[:delay] = prefix[:delay]
        return chunk.astype(np.float32)


def drive(engine, ticks):
    engine.start(0)
    return np.stack([engine.tick(k + 1) for k in range(ticks)])


def test_prefix_is_exactly_what_was_executed():
    cfg = RTCConfig(control_hz=30, horizon=H, action_dim=A, execute_horizon=5, max_delay=6, initial_latency_s=4 / 30)
    pol = OffsetPolicy()
    eng = RTCEngine(pol, cfg, runner=SteppedRunner(4, 30))
    executed = drive(eng, 200)
    assert eng.stats.chunks > 20 and eng.stats.late == 0 and eng.stats.underruns == 0
    assert set(eng.stats.delays_actual) == {4}
    for obs, prefix, d in pol.requests[1:]:
        start = obs - 1  # obs k+1 is passed at tick k
        assert d == 4
        np.testing.assert_array_equal(prefix, executed[start:start + d])
    # the executed stream changes chunk exactly where the committed prefix ends (this policy's
    # chunks jump there by construction), never inside a prefix
    jumps = set(np.flatnonzero(np.abs(np.diff(executed, axis=0)).max(1) > 0.05) + 1)
    switch_points = {obs - 1 + d for obs, _, d in pol.requests[1:]}
    assert jumps and jumps <= switch_points


def test_naive_chunking_jumps():
    cfg = RTCConfig(control_hz=30, horizon=H, action_dim=A, execute_horizon=5, max_delay=6, use_prefix=False)
    eng = RTCEngine(OffsetPolicy(), cfg, runner=SteppedRunner(4, 30))
    executed = drive(eng, 200)
    assert np.abs(np.diff(executed, axis=0)).max() > 0.5
    assert eng.stats.boundary_jumps and np.mean(eng.stats.boundary_jumps) > 0.3


def test_late_inference_skips_ahead_and_adapts():
    cfg = RTCConfig(control_hz=30, horizon=H, action_dim=A, execute_horizon=4, max_delay=7, initial_latency_s=2 / 30)
    eng = RTCEngine(OffsetPolicy(), cfg, runner=SteppedRunner(6, 30))
    drive(eng, 120)
    assert eng.stats.late >= 1                        # first predictions said 2 ticks, it took 6
    assert eng.stats.delays_predicted[-1] == 6        # the prediction learned the real latency
    assert eng.stats.late <= 2 and eng.stats.underruns == 0


def test_inference_slower_than_a_chunk_holds_last_action():
    cfg = RTCConfig(control_hz=30, horizon=H, action_dim=A, execute_horizon=8, max_delay=6)
    eng = RTCEngine(OffsetPolicy(), cfg, runner=SteppedRunner(H + 3, 30))
    out = drive(eng, 100)
    assert eng.stats.underruns > 0 and eng.stats.dropped > 0
    assert np.isfinite(out).all()


def test_policy_errors_surface_in_the_control_thread():
    class Broken(OffsetPolicy):
        def __call__(self, obs, prefix, delay):
            if self.requests:
                raise RuntimeError("GPU fell off")
            return super().__call__(obs, prefix, delay)

    cfg = RTCConfig(control_hz=30, horizon=H, action_dim=A, execute_horizon=2, max_delay=4)
    eng = RTCEngine(Broken(), cfg, runner=ThreadedRunner())
    eng.start(0)
    with pytest.raises(RuntimeError, match="GPU fell off"):
        for k in range(200):
            eng.tick(k)
            time.sleep(0.002)
    eng.close()


def test_threaded_realtime_loop():
    """Real threads and a real clock: 50 Hz control, ~60 ms inference (3 ticks)."""
    cfg = RTCConfig(control_hz=50, horizon=H, action_dim=A, execute_horizon=6, max_delay=6, initial_latency_s=0.06)
    pol = OffsetPolicy(sleep_s=0.06)
    eng = RTCEngine(pol, cfg)
    executed = []
    periods = run_realtime(eng, observe=lambda: len(executed), act=executed.append, ticks=150)
    eng.close()
    s = eng.stats.summary()
    print("threaded RTC:", s, "period p50/p99 ms", np.percentile(periods, [50, 99]) * 1e3)
    assert s["chunks"] >= 10 and s["underruns"] == 0
    assert 50 <= s["latency_ms_p50"] <= 250
    executed = np.stack(executed)
    for obs, prefix, d in pol.requests[1:]:
        if d and obs + d <= len(executed):
            np.testing.assert_array_equal(prefix, executed[obs:obs + d])


def toy_batch(b, cfg, g):
    hz, ad = cfg.horizon, cfg.action_dim
    phase = torch.rand(b, 1, 1, generator=g) * 2 * torch.pi
    k = torch.arange(hz).float()[None, :, None]
    actions = torch.sin(0.4 * k + phase + torch.arange(ad).float()[None, None, :])
    return actions, torch.zeros(b, 2, cfg.context_dim), torch.zeros(b, cfg.state_dim)


@pytest.mark.slow
def test_trained_expert_switches_chunks_smoothly_with_prefix():
    """Phase is unobservable except through the committed prefix: with RTC the executed stream
    stays a smooth sinusoid across chunk switches; naive chunking jumps."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(CONFIGS["tiny"], time_sampling="uniform", max_delay=6)
    m = ActionExpert(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        a, c, s = toy_batch(64, cfg, g)
        loss = m.loss(a, c, s, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def inputs(_obs):
        return torch.zeros(2, cfg.context_dim), torch.zeros(cfg.state_dim)

    jumps = {}
    for use_prefix in (True, False):
        rcfg = RTCConfig(control_hz=30, horizon=cfg.horizon, action_dim=cfg.action_dim, execute_horizon=8, max_delay=cfg.max_delay,
                         initial_latency_s=5 / 30, use_prefix=use_prefix)
        eng = RTCEngine(ExpertChunkPolicy(m, inputs, steps=10, seed=3), rcfg, runner=SteppedRunner(5, 30))
        executed = drive(eng, 160)
        within = np.abs(np.diff(executed, axis=0)).mean()
        jumps[use_prefix] = (np.mean(eng.stats.boundary_jumps), within)
    print("boundary jump (rtc, naive), within-chunk step:", jumps)
    assert jumps[True][0] < 0.4 * jumps[False][0]
    assert jumps[True][0] < 3 * jumps[True][1]


def test_split_action_clamps_and_routes():
    a = np.zeros(PSI0_ACTION.size, np.float32)
    a[PSI0_ACTION.slice("lower_body")] = [0, 0, 0, 0.75, 9.0, 0, 0, 0]  # vx far above AMO's 0.5 m/s
    t = split_action(a)
    assert t.clamped and t.lower_body_command[4] == pytest.approx(0.5)
    assert t.upper_body_q.shape == (28,) and t.lower_body_command.shape == (8,)
    with pytest.raises(ValueError):
        split_action(np.zeros(35))


def test_serving_never_uses_a_delay_training_never_drew():
    """One definition (schemas.chunking) in the checkpoint: the engine predicts at most max_delay - 1 (training
    drew d in 0..max_delay-1), and the policy refuses d >= max_delay instead of clamping it silently."""
    from schemas.chunking import REFERENCE_CHUNKING, ChunkingSpec

    assert (REFERENCE_CHUNKING.horizon, REFERENCE_CHUNKING.max_delay, REFERENCE_CHUNKING.min_execute_horizon) == (30, 8, 15)
    spec = ChunkingSpec(horizon=16, max_delay=6, min_execute_horizon=8)
    assert spec.check_delay(5) == 5
    with pytest.raises(ValueError, match="never drawn in training"):
        spec.check_delay(6)
    with pytest.raises(ValueError, match="min_execute_horizon"):
        ChunkingSpec(horizon=16, max_delay=8, min_execute_horizon=15)     # 15 > 16 - 7: chunks would run out
    # the engine: a 10-tick inference never becomes a predicted delay of 6 (it is late instead)
    cfg = RTCConfig.from_chunking(spec, action_dim=A, initial_latency_s=10 / 30)
    assert (cfg.horizon, cfg.max_delay, cfg.execute_horizon) == (16, 6, 8)
    engine = RTCEngine(OffsetPolicy(), cfg, runner=SteppedRunner(10))
    drive(engine, 60)
    assert max(engine.stats.delays_predicted) == 5 and engine.stats.late > 0


@pytest.mark.slow
def test_the_policy_refuses_a_delay_training_never_drew(tmp_path):
    """The policy's saved config carries the spec; d = max_delay is refused, max_delay - 1 is served."""
    from deploy.policy_adapter import Psi0ChunkPolicy
    from training.model.policy import PolicyConfig, Psi0Policy

    cfg = PolicyConfig.load("tiny")
    policy = Psi0Policy.build(cfg)
    policy.save_pretrained(tmp_path / "p")
    back = Psi0Policy.from_pretrained(tmp_path / "p")
    assert back.cfg.chunking() == cfg.chunking() and back.expert.cfg.max_delay == cfg.max_delay
    chunk_policy = Psi0ChunkPolicy(back)
    obs = {"images": torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8), "task": ["wave"],
           "state": torch.zeros(1, 48), "state_mask": torch.ones(1, 48, dtype=torch.bool)}
    prefix = np.zeros((cfg.max_delay, cfg.action_dim), np.float32)
    assert chunk_policy(obs, prefix, cfg.max_delay - 1).shape == (cfg.horizon, cfg.action_dim)
    with pytest.raises(ValueError, match="never drawn in training"):
        chunk_policy(obs, prefix, cfg.max_delay)

"""SVT-AV1 turns the thread that opens an encoder (and the threads it starts) SCHED_FIFO 99 where the OS
permits (root / CAP_SYS_NICE): psi0's encoder must leave the process's scheduling as it found it."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from shards.scheduling import may_go_realtime, scheduling_kept  # noqa: E402
from shards.video import EpisodeEncoder, VideoConfig  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling API")


def _policies() -> set[tuple[int, int]]:
    out = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            out.add((os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority))
        except OSError:
            pass
    return out


def _frame() -> "av.VideoFrame":
    return av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")


def _policy_by_tid() -> dict[int, tuple[int, int]]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = (os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority)
        except OSError:
            pass
    return out


def test_episode_encoder_keeps_the_caller_and_runs_its_own_threads_as_batch(tmp_path: Path):
    """The caller keeps its policy, threads that existed before are untouched, and every thread the encoder
    started is SCHED_BATCH (never real-time, whatever SVT-AV1 asked for)."""
    before = _policy_by_tid()
    encoder = EpisodeEncoder(tmp_path / "a.mp4", 30, VideoConfig(width=64, height=64))
    after = _policy_by_tid()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert all(after[tid] == policy for tid, policy in before.items() if tid in after)
    started = {tid: policy for tid, policy in after.items() if tid not in before}
    assert started, "SVT-AV1 started no thread of its own?"
    assert set(started.values()) == {(os.SCHED_BATCH, 0)}, started
    for _ in range(20):
        encoder.add(_frame())
    encoder.close()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_scheduling_kept_restores_the_caller_and_new_threads_only():
    """What the guard undoes, done by hand (SCHED_BATCH needs no privilege, so this runs anywhere): the caller
    and a thread started inside the block are put back; a thread that existed before is left as it was."""
    ready, done = threading.Event(), threading.Event()
    older_tid: list[int] = []

    def older() -> None:
        older_tid.append(threading.get_native_id())
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        ready.set()
        done.wait(10)

    keep = threading.Thread(target=older)
    keep.start()
    ready.wait(10)
    started: list[threading.Thread] = []
    try:
        with scheduling_kept():
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))   # as SVT does to its caller
            inner = threading.Thread(target=done.wait, args=(10,))       # inherits SCHED_BATCH
            inner.start()
            started.append(inner)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        assert os.sched_getscheduler(inner.native_id) == os.SCHED_OTHER
        assert os.sched_getscheduler(older_tid[0]) == os.SCHED_BATCH
        with scheduling_kept(new_threads=os.SCHED_BATCH):                 # an encoder's own threads: batch
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            batch = threading.Thread(target=done.wait, args=(10,))        # inherits SCHED_IDLE
            batch.start()
            started.append(batch)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        assert os.sched_getscheduler(batch.native_id) == os.SCHED_BATCH
        assert os.sched_getscheduler(inner.native_id) == os.SCHED_OTHER   # started before this block
    finally:
        done.set()
        keep.join(10)
        for t in started:
            t.join(10)
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


_PROBE = """
import os, sys
sys.path.insert(0, os.getcwd())
from shards.scheduling import may_go_realtime
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
    permitted = True
except PermissionError:
    permitted = False
print(may_go_realtime(), permitted)
"""
"""Prints what `may_go_realtime` says and what the OS then permits, in a process of its own (the test's
thread never turns real-time)."""


def _probe(*prefix: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent)


def test_may_go_realtime_says_whether_fifo_99_is_permitted():
    """The check the benchmark prints and the test below skips on agrees with the OS itself."""
    out = _probe()
    assert out.returncode == 0, out.stderr[-2000:]
    says, permitted = out.stdout.split()
    assert says == permitted


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="dropping CAP_SYS_NICE takes root and util-linux's setpriv")
def test_may_go_realtime_is_false_once_cap_sys_nice_is_dropped():
    """Root without CAP_SYS_NICE (a container that drops it) may not go real-time, and the check says so."""
    out = _probe("setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice")
    if out.returncode != 0 and "not permitted" in out.stderr:
        pytest.skip(f"this container may not change the capability bounding set: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not may_go_realtime(), reason="SVT-AV1 can raise priorities only with CAP_SYS_NICE / RLIMIT_RTPRIO")
def test_svt_av1_really_does_turn_its_caller_real_time(tmp_path: Path):
    """The hazard the guard exists for (so the first test is not vacuous where it runs as root)."""
    container = av.open(str(tmp_path / "raw.mp4"), "w")
    stream = container.add_stream("libsvtav1", rate=30, options={"preset": "12", "svtav1-params": "lp=2"})
    stream.width = stream.height = 64
    stream.pix_fmt = "yuv420p"
    try:
        stream.codec_context.open()
        assert os.sched_getscheduler(0) == os.SCHED_FIFO
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        container.close()


def test_give_up_realtime_refuses_sched_fifo_to_the_process_and_its_children():
    """In a child process (it cannot be undone): afterwards neither the process nor a program it starts may
    make a thread SCHED_FIFO, whether or not it could before (root here: it could)."""
    code = """
import os, subprocess, sys
from shards.scheduling import give_up_realtime, may_go_realtime
could = may_go_realtime()
give_up_realtime()
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    print("fifo allowed")
except PermissionError:
    print("fifo refused")
child = subprocess.run([sys.executable, "-c", "import os\\ntry:\\n os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1)); print('allowed')\\nexcept PermissionError: print('refused')"],
                       capture_output=True, text=True, check=True)
print("child", child.stdout.strip(), "could", could, "may", may_go_realtime())
"""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)}).stdout.split("\n")
    assert out[0] == "fifo refused", out
    assert out[1].startswith("child refused") and out[1].endswith("may False"), out


def _egodex_job(tmp_path: Path, out: str, realtime: int):
    from pipelines.stages import JobConfig
    from samples import egodex as egodex_sample

    src = tmp_path / "src"
    if not src.exists():
        egodex_sample.write_sample(src, 0, (160, 120), episodes_per_task=1, seconds=1.0)
    return JobConfig(source="egodex", input=str(src), output=str(tmp_path / out), formats=("lerobot", "zarr"),
                     episodes_per_shard=8, tokenize=False, video_width=64, video_height=64, realtime=realtime)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not may_go_realtime(1), reason="SCHED_FIFO needs root / CAP_SYS_NICE / RLIMIT_RTPRIO")
def test_realtime_job_runs_every_codec_thread_fifo_and_writes_the_same_bytes(tmp_path: Path, monkeypatch):
    """`--realtime 1`: while a shard is written its loader, decoders, writer and every thread an encoder starts
    run SCHED_FIFO 1 (not SVT-AV1's 99, and no thread stays ordinary); afterwards the caller is ordinary again;
    output and catalog are byte for byte those of an ordinary run."""
    from pipelines import runners, stages
    from pipelines.runners import run_local
    from shards import video

    seen: dict[str, set[tuple[int, int]]] = {"load": set(), "decode": set(), "encode": set()}
    real_load, real_fill, real_add = stages.load, video.FrameFeed.fill, video.EpisodeEncoder.add

    def load(*args, **kwargs):
        seen["load"].add(_policy_by_tid()[threading.get_native_id()])
        return real_load(*args, **kwargs)

    def fill(self):
        seen["decode"].add(_policy_by_tid()[threading.get_native_id()])
        return real_fill(self)

    def add(self, frame):
        if self.frames == 0:        # every thread alive now but the pre-existing ones: writer, loader, SVT-AV1's
            seen["encode"] |= {p for tid, p in _policy_by_tid().items() if tid not in before}
            seen["encode"].add(_policy_by_tid()[threading.get_native_id()])
        return real_add(self, frame)

    def run_shard(*args, **kwargs):
        before.update(_policy_by_tid())         # threads already there (the progress bar's): not the shard's
        return real_run_shard(*args, **kwargs)

    before: set[int] = set()
    real_run_shard = runners.run_shard
    monkeypatch.setattr(stages, "load", load)
    monkeypatch.setattr(video.FrameFeed, "fill", fill)
    monkeypatch.setattr(video.EpisodeEncoder, "add", add)
    monkeypatch.setattr(runners, "run_shard", run_shard)
    run_local(_egodex_job(tmp_path, "rt", 1))
    fifo_1 = {(os.SCHED_FIFO, 1)}
    assert seen["load"] == fifo_1 and seen["decode"] == fifo_1 and seen["encode"] == fifo_1, seen
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    monkeypatch.undo()
    run_local(_egodex_job(tmp_path, "plain", 0))
    assert _tree(tmp_path / "rt") == _tree(tmp_path / "plain") and (tmp_path / "rt" / "catalog.json").is_file()


def test_realtime_request_without_the_privilege_warns_and_runs_ordinary(tmp_path: Path):
    """An ordinary user asking for `--realtime`: one warning, the shards written as usual, every thread ordinary
    (in a child process that gives the privilege up first where it has it)."""
    code = f"""
import logging, os, sys
from pathlib import Path
from shards.scheduling import give_up_realtime, may_go_realtime
if may_go_realtime(1):
    give_up_realtime()
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from test_video_scheduling import _egodex_job
from pipelines.runners import run_local
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
catalog = run_local(_egodex_job(Path({str(tmp_path)!r}), "out", 1))
print("ingested", catalog.counts()["ingested"], "policy", os.sched_getscheduler(0))
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"ingested 3 policy {os.SCHED_OTHER}", proc.stdout
    assert proc.stderr.count("WARNING --realtime 1: this process may not use real-time scheduling") == 1, proc.stderr


def test_realtime_refused_by_the_os_warns_once_per_job_and_runs_ordinary(tmp_path: Path, monkeypatch, caplog):
    """A container's cgroup may refuse SCHED_FIFO even to root: every shard of the job is still written, with one
    warning for the whole job (not one per shard), and the caller stays ordinary."""
    import logging

    from pipelines.runners import run_local
    from shards import scheduling

    real = os.sched_setscheduler

    def refusing(pid, policy, param):
        if policy == os.SCHED_FIFO and param.sched_priority == 7:
            raise PermissionError(1, "Operation not permitted")
        return real(pid, policy, param)

    monkeypatch.setattr(scheduling, "may_go_realtime", lambda priority=99: True)
    monkeypatch.setattr(scheduling.os, "sched_setscheduler", refusing)
    monkeypatch.setattr(scheduling, "_warned", set())
    config = dataclasses.replace(_egodex_job(tmp_path, "out", 7), episodes_per_shard=1)     # three shards
    with caplog.at_level(logging.WARNING, logger="psi0.shards"):
        catalog = run_local(config)
    assert catalog.counts()["ingested"] == 3 and len({s.shard_id for s in catalog.shards}) == 3
    refused = [r for r in caplog.records if "--realtime 7: this process may not use real-time scheduling" in r.message]
    assert len(refused) == 1 and "Operation not permitted" in refused[0].message
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_realtime_priority_outside_1_99_is_refused_before_the_job_starts(tmp_path: Path):
    from pipelines.jobcli import main

    with pytest.raises(ValueError, match="SCHED_FIFO priority 1-99"):
        _egodex_job(tmp_path, "out", 100)
    with pytest.raises(SystemExit) as stop:
        main(["egodex", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--realtime", "-1"])
    assert stop.value.code == 2 and not (tmp_path / "o").exists()

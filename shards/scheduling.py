"""Keep SVT-AV1 from turning threads real-time behind the caller's back; make a shard's whole codec pipeline
real-time when a job asks for it (`realtime_codecs`, `psi0 ingest --realtime`).

Opening a libsvtav1 encoder, SVT-AV1 (3.0, through libavcodec) switches the calling thread to SCHED_FIFO
priority 99 wherever the OS lets it (root, or CAP_SYS_NICE: a Ray worker in a container is often root), and
the encoder threads it then starts inherit that. Measured here: after `codec_context.open()` the caller and
part of SVT's ~37 threads ran FIFO 99, and every process started later from that thread (a browser, a
training job, ffmpeg) inherited it too: in a test run two headless Chromium renderers at FIFO 99 took both
cores and everything else starved (load average 105). A real-time encoder would also preempt the teleop
control loop (FIFO 10). `scheduling_kept` puts the caller and the threads started inside it back to the
caller's own policy."""
from __future__ import annotations

import logging
import os
import resource
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("psi0.shards")


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _policy(tid: int) -> tuple[int, int] | None:
    try:
        return os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
    except OSError:          # the thread ended
        return None


CAP_SYS_NICE = 23
"""Bit of the capability that lets a thread raise its scheduling priority (linux/capability.h)."""


def may_go_realtime(priority: int = 99) -> bool:
    """Whether this process may switch a thread to SCHED_FIFO at `priority` (SVT-AV1 asks for 99): with
    CAP_SYS_NICE in its effective set (root normally has it; a container may drop it), or an RLIMIT_RTPRIO
    soft limit of at least `priority`. False off Linux."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        with open("/proc/self/status") as status:
            effective = next((line.split()[1] for line in status if line.startswith("CapEff:")), "0")
        if int(effective, 16) >> CAP_SYS_NICE & 1:
            return True
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return soft == resource.RLIM_INFINITY or soft >= priority


@contextmanager
def scheduling_kept(new_threads: int | None = None) -> Iterator[None]:
    """Whatever the block does, the calling thread ends up with its own scheduling policy and priority, and
    the threads started during it with the caller's too, or with `new_threads` (a policy such as
    `os.SCHED_BATCH`, priority 0) when given. Threads that existed before are left alone."""
    if not hasattr(os, "sched_getscheduler"):          # not Linux: nothing to guard
        yield
        return
    me = threading.get_native_id()
    own = _policy(me)
    before = _thread_ids()
    try:
        yield
    finally:
        if own is not None:
            started = (new_threads, 0) if new_threads is not None else own
            for tid in _thread_ids() - before - {me}:
                _set_policy(tid, started)
            _set_policy(me, own)


def _set_policy(tid: int, policy: tuple[int, int]) -> None:
    now = _policy(tid)
    if now is not None and now != policy:
        try:
            os.sched_setscheduler(tid, policy[0], os.sched_param(policy[1]))
        except OSError:           # the thread ended, or the OS refuses: it keeps what it has
            pass


ENCODER_THREADS = getattr(os, "SCHED_BATCH", None)
"""The policy of an encoder's own threads (SVT-AV1's ~37, x264's): SCHED_BATCH, CPU-bound work that does not
preempt other threads when it wakes. SVT-AV1 hands each frame through a pipeline of threads; under the ordinary
policy every hand-off may preempt a decoder, so the 618-frame ingest benchmark made 22 k context switches with
them ordinary and 16 k as batch threads, spent ~2 % less CPU (3.37 vs 3.45 s) and ran 0.6-1.6 % faster (10-round
A/Bs; one-episode shards +1.1 %). Unprivileged, and no less CPU share: only wake-up preemption changes."""


REALTIME_PRIORITY = 1
"""SCHED_FIFO priority `psi0 ingest --realtime` gives a shard's codec threads: the lowest real-time priority,
enough to run ahead of every ordinary thread and to hand frames between equals without preemption, and below
teleop's control loop (`teleop.loop`: 10), the kernel's interrupt threads (50) and SVT-AV1's own choice (99)."""

_realtime = threading.local()


@contextmanager
def realtime_codecs(priority: int) -> Iterator[bool]:
    """Inside the block, this thread and every thread it starts (a shard's loader and decoders inherit it; an
    encoder's own threads are set to it by `encoder_threads_policy`) run SCHED_FIFO `priority`; afterwards this
    thread has its own policy again. Yields whether that took effect: `priority` 0 asks for nothing, and where
    the process may not go real-time (an unprivileged user) a warning says so and the block runs as usual.

    Why offer it: as root SVT-AV1 makes its own threads real-time anyway, and a whole codec pipeline at one
    real-time priority hands frames along with far fewer preemptions (the ingest benchmark: 5-6 % fewer CPU
    seconds per run). Why not by default: real-time threads leave everything else on the host the kernel's
    5 % (`sched_rt_runtime_us`) while they are busy, so only a node that does nothing but ingest should ask for
    it, never one that runs teleop's control loop or a desktop."""
    if priority <= 0:
        yield False
        return
    me = threading.get_native_id()
    own = _policy(me)
    refused = None if may_go_realtime(priority) else "needs root or CAP_SYS_NICE"
    if refused is None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except OSError as exc:      # e.g. a container's cgroup with no real-time budget refuses even root
            refused = str(exc)
    if refused is not None:
        _warn_once(f"--realtime {priority}: this process may not use real-time scheduling ({refused}); "
                   "running ordinary")
        yield False
        return
    outer = getattr(_realtime, "on", False)
    _realtime.on = True
    try:
        yield True
    finally:
        _realtime.on = outer
        if own is not None:
            _set_policy(me, own)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log `message` the first time only: a job asks again for every shard."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def encoder_threads_policy() -> int | None:
    """The policy for the threads an encoder opened on this thread starts: the caller's own inside
    `realtime_codecs` (None: `scheduling_kept` gives them the caller's), else `ENCODER_THREADS`."""
    return None if getattr(_realtime, "on", False) else ENCODER_THREADS


def ordinary_scheduling() -> None:
    """Put the calling thread back on the ordinary scheduler if a library left it real-time (where no guard
    could wrap the call: LeRobot's encoder in the tests, the peers' paths in benchmarks/ingest.py)."""
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


PR_CAPBSET_DROP = 24
_CAP_VERSION_3 = 0x20080522          # linux/capability.h: 64-bit capability sets as two 32-bit words


def give_up_realtime() -> None:
    """Take from this process (and whatever it starts) the privilege to turn threads real-time, as an ordinary
    user runs: CAP_SYS_NICE leaves the bounding, effective, permitted and inheritable sets, and RLIMIT_RTPRIO
    drops to 0. Why: SVT-AV1 makes its encoder threads SCHED_FIFO 99 wherever it may, and that changes how
    fast a codec pipeline runs (LeRobot's streaming writer ~10 % faster here, the parallel floor ~2 %, psi0's
    job with `--realtime` ~6 %), so `benchmarks/ingest.py --realtime off` measures every path as an
    unprivileged user's run would. Irreversible for the process. Raises OSError where Linux refuses."""
    import ctypes

    if not hasattr(os, "sched_setscheduler"):
        raise OSError("real-time scheduling privileges are a Linux notion")
    libc = ctypes.CDLL(None, use_errno=True)
    if may_go_realtime() and libc.prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        if err != 22:               # EINVAL: the kernel does not know the capability (nothing to drop)
            raise OSError(err, f"prctl(PR_CAPBSET_DROP, CAP_SYS_NICE): {os.strerror(err)}")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(_CAP_VERSION_3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    keep = ~(1 << CAP_SYS_NICE) & 0xFFFFFFFF          # CAP_SYS_NICE (23) lives in the first word
    data[0].effective &= keep
    data[0].permitted &= keep
    data[0].inheritable &= keep
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    if may_go_realtime():
        raise OSError("CAP_SYS_NICE or RLIMIT_RTPRIO still allows real-time scheduling")

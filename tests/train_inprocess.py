"""`psi0 train` through the CLI's own `main`, inside the test process.

Why: a fresh `train` process pays ~9 s of torch + transformers imports and tiny-model set-up (measured), ~0.03 s
the second time in one process. Tests whose subject is not the process boundary (exit codes and stderr of a
real process, signals, torchrun) call `train_in_process` instead; it puts back what `train` sets for its
process so later tests in the same worker see the state they would have seen.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def train_state_restored() -> Iterator[None]:
    """What `train` sets for its process, put back after it: the loggers it configures
    (`training.cli.LOGGERS`), torch's global RNG (it seeds it) and torch's thread count."""
    from training.cli import LOGGERS
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            for lg, (handlers, level, propagate) in zip(loggers, saved):
                lg.handlers[:], lg.propagate = handlers, propagate
                lg.setLevel(level)
            torch.set_num_threads(threads)


def train_in_process(*args: str) -> None:
    """Run `psi0 train ARGS` in this process; fail the test on a non-zero exit code."""
    from training.cli import main
    with train_state_restored():
        code = main(list(args))
    assert code == 0, f"train exited {code}"

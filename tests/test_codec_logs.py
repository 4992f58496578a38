"""An ingest job's stderr carries psi0's lines, not a codec banner per episode: SVT-AV1 prints its 20-line
banner only when the user asks (SVT_LOG). (The EgoDex probe's muted warning: tests/test_egodex_probe.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
ENCODE_ONE_EPISODE = """
import sys, numpy as np
from pathlib import Path
from shards.video import EpisodeEncoder, VideoConfig
import av
enc = EpisodeEncoder(Path(sys.argv[1]), 30, VideoConfig(width=64, height=64))
for i in range(4):
    rgb = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
    enc.add(rgb.reformat(format="yuv420p"))
enc.close()
"""


def _encode_stderr(tmp_path: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "SVT_LOG"} | env
    done = subprocess.run([sys.executable, "-c", ENCODE_ONE_EPISODE, str(tmp_path / "e.mp4")], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "e.mp4").stat().st_size > 0
    return done.stderr


def test_svt_banner_only_when_the_user_asks(tmp_path: Path) -> None:
    assert "Svt[" not in _encode_stderr(tmp_path)
    assert "SVT [version]" in _encode_stderr(tmp_path, SVT_LOG="3")      # the user's choice wins

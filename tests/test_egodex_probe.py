"""The EgoDex probe's no-decode open reports what the decoding probe reports, and defers to it when the
header cannot say (fragmented MP4: no frame count in `moov`)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from converters.egodex import _stream_header


def write_mp4(path: Path, frames: int, fragmented: bool) -> Path:
    options = {"movflags": "frag_keyframe+empty_moov"} if fragmented else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "4"}
        rng = np.random.default_rng(0)
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 96, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("frames", [1, 12, 45])
def test_no_decode_probe_equals_decoding_probe(tmp_path: Path, frames: int) -> None:
    path = str(write_mp4(tmp_path / "v.mp4", frames, fragmented=False))
    fast = _stream_header(path, path, skip_decoding=True)
    assert fast is not None
    assert fast == _stream_header(path, path, skip_decoding=False)
    assert fast[0] == frames and fast[2:] == (96, 64, "h264")


def test_fragmented_mp4_defers_to_the_decoding_probe(tmp_path: Path) -> None:
    path = str(write_mp4(tmp_path / "v.mp4", 12, fragmented=True))
    assert _stream_header(path, path, skip_decoding=True) is None
    assert _stream_header(path, path, skip_decoding=False) is not None

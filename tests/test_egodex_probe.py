"""The EgoDex probe's no-decode open reports what the decoding probe reports, and defers to it when the
header cannot say (fragmented MP4: no frame count in `moov`)."""
from __future__ import annotations

import io
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest

from converters.egodex import _HEADER_ONLY, _NO_DECODE, _stream_header
from schemas.ffmpeg_log import _libavutils


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


class _CountingFile(io.FileIO):
    """A file whose reads are counted (PyAV reads a file object through `read`)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_no_decode_probe_reads_the_header_not_seconds_of_packets(tmp_path: Path) -> None:
    """FFmpeg's probe reads up to 5 s of packets looking for what a skipped frame never reveals; told to
    stop at the header, it reads the index and at most a packet (10 s of noise: <10 % of the file)."""
    path = str(write_mp4(tmp_path / "v.mp4", 300, fragmented=False))
    size = Path(path).stat().st_size
    with _CountingFile(path) as source:
        header = _stream_header(source, path, skip_decoding=True)
    assert header == _stream_header(path, path, skip_decoding=False)
    assert source.bytes_read < 0.1 * size, (source.bytes_read, size)


def test_header_probe_is_quiet_where_ffmpeg_prints(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """FFmpeg warns that the header-only open found no codec parameters; the probe mutes that (two lines per
    episode otherwise, where FFmpeg's printer is on) and puts FFmpeg's threshold back after. torchcodec,
    loaded first, brings a second libavutil (the system's) into the process: PyAV's must still be the one muted."""
    try:
        import torchcodec.decoders  # noqa: F401 - loads the system's libavutil beside PyAV's
    except ImportError:
        pass
    _libavutils.cache_clear()
    path = str(write_mp4(tmp_path / "v.mp4", 30, fragmented=False))
    av.logging.restore_default_callback()             # what LeRobot's video code leaves behind
    try:
        capfd.readouterr()
        with av.open(path, options=_HEADER_ONLY, stream_options=_NO_DECODE * 8):
            pass
        assert "Could not find codec parameters" in capfd.readouterr().err   # the warning the probe mutes
        assert _stream_header(path, path, skip_decoding=True) is not None
        assert "Could not find codec parameters" not in capfd.readouterr().err
        with av.open(str(write_mp4(tmp_path / "w.mp4", 2, fragmented=False)), options=_HEADER_ONLY,
                     stream_options=_NO_DECODE * 8):
            pass
        assert "Could not find codec parameters" in capfd.readouterr().err   # put back after the block
    finally:
        av.logging.set_level(None)                    # PyAV's default: FFmpeg's messages dropped

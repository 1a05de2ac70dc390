"""read_video without decord (macOS, arm64: no wheel) falls back to PyAV and gets the same frames."""
import sys
from pathlib import Path

import numpy as np
import pytest

from v4s_lite import video
from v4s_lite.video import DataError, read_video, write_video

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "data" / "v4s-lite" / "clips").glob("*/*.mp4"))
try:  # the reference, imported before any test hides it: only where decord has a wheel
    import decord as DECORD
except ImportError:
    DECORD = None


@pytest.fixture
def no_decord(monkeypatch):
    """`import decord` raises ImportError, as on a machine where it could not be installed."""
    monkeypatch.setitem(sys.modules, "decord", None)
    assert video.video_backend() == "pyav"


def _decord_frames(path):
    if DECORD is None:
        pytest.skip("decord is not installed here (no wheel for this platform): nothing to compare with")
    return video._read_frames_decord(DECORD, Path(path))


@pytest.mark.parametrize("path", SHIPPED[:2], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fallback_reads_the_shipped_clips_frame_for_frame(path, no_decord):
    want = _decord_frames(path)
    got = read_video(path)
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("h,w", [(64, 104), (27, 35), (96, 416)])
def test_fallback_matches_decord_on_fresh_videos(tmp_path, h, w, no_decord):
    rng = np.random.default_rng(h * w)
    frames = rng.integers(0, 256, (6, h, w, 3), dtype=np.uint8)
    frames[:, : h // 2] = frames[:, : h // 2] // 64 * 64  # flat regions and noise, as in a render with edges
    write_video(tmp_path / "v.mp4", frames, fps=8)
    got = read_video(tmp_path / "v.mp4", expected_frames=6)
    assert np.array_equal(got, _decord_frames(tmp_path / "v.mp4"))


def test_fallback_raises_the_same_clear_errors(tmp_path, no_decord):
    write_video(tmp_path / "v.mp4", np.full((9, 32, 40, 3), 128, np.uint8), fps=8)
    raw = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DataError, match="PyAV cannot decode.*corrupt or truncated"):
        read_video(tmp_path / "trunc.mp4")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_video(tmp_path / "garbage.mp4")
    with pytest.raises(DataError, match="has 9 frames but meta.json describes 10"):
        read_video(tmp_path / "v.mp4", expected_frames=10)


def test_without_either_reader_the_error_says_what_to_install(tmp_path, monkeypatch, no_decord):
    monkeypatch.setitem(sys.modules, "av", None)
    write_video(tmp_path / "v.mp4", np.zeros((2, 16, 20, 3), np.uint8), fps=8)
    with pytest.raises(video.V4SError, match="pip install av"):
        read_video(tmp_path / "v.mp4")

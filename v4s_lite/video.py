"""Videos on disk: H.264 mp4 written with imageio-ffmpeg, read back with decord (or PyAV where decord has no wheel).

The clip folders of `data.py` hold two of these (context.mp4, target.mp4); `v4s sample` and `v4s eval` write and
read them too. One owner of the codec settings below, so every mp4 the course writes reads back the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .utils import V4SError

# H.264 at crf 10 in full-resolution chroma (yuv444p), which decord reads: on a rendered lite scan the round trip
# is 1.41/255 mean abs error (99th pct 6). yuv420p halves the chroma resolution and smears the thin coloured
# edges of objects (2.34/255, 99th pct 17, same size); lossless (-qp 0) is 2x larger. See docs/DATA.md.
VIDEO_CODEC, VIDEO_PIX_FMT, VIDEO_CRF = "libx264", "yuv444p", 10
# decord 0.6.0 fails to copy out frames of these widths ("DECORDArrayCopyFromTo: The size must exactly match"),
# measured for every width 8..129 and multiples of 24 up to 456 (any height); write_video refuses them.
DECORD_BAD_WIDTHS = frozenset({8, 12, 16, 24, 48, 72})


class DataError(V4SError):
    """A clip on disk is unusable: corrupt/truncated video, frame counts that disagree, a missing key or file."""


def write_video(path, frames, fps: int) -> Path:
    """Write uint8 frames (N, H, W, 3) as an H.264 mp4 (see VIDEO_* above for the codec settings)."""
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DataError(f"write_video wants uint8 frames (N, H, W, 3) with N >= 1, got {frames.dtype} {frames.shape}")
    n, h, w, _ = frames.shape
    if w in DECORD_BAD_WIDTHS:
        raise DataError(f"width {w} cannot be read back by decord 0.6 (widths {sorted(DECORD_BAD_WIDTHS)} fail); "
                        "pick another width, e.g. 104 (lite) or 416 (paper)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec=VIDEO_CODEC, pix_fmt_in="rgb24", pix_fmt_out=VIDEO_PIX_FMT,
        quality=None, macro_block_size=1,  # 1: never pad/resize to multiples of 16
        output_params=["-crf", str(VIDEO_CRF)], ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def _decord():
    """decord when it is importable (it has wheels for Linux x86_64 and Windows only), else None."""
    try:
        import decord
    except ImportError:
        return None
    return decord


def _read_frames_decord(decord, path: Path) -> np.ndarray:
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(reader)
        return reader.get_batch(list(range(n))).asnumpy() if n else np.zeros((0, 0, 0, 3), np.uint8)
    except (RuntimeError, decord.DECORDError) as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise DataError(
            f"{path}: decord cannot decode this video ({reason}); the file is corrupt or truncated "
            "(an interrupted copy or write?). Regenerate it with `v4s make-data` or copy it again."
        ) from None


def _read_frames_pyav(path: Path) -> np.ndarray:
    """The fallback where decord has no wheel (macOS, arm64): PyAV, converting to RGB with the same
    BT.601 limited-range matrix and bilinear scaler that decord's ffmpeg uses (identical frames on our clips)."""
    try:
        import av
    except ImportError:
        raise V4SError("reading videos needs decord or PyAV, and neither is installed: `pip install av` "
                       "(decord has wheels only for Linux x86_64 and Windows)") from None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            frames = [f.to_ndarray(format="rgb24", interpolation="BILINEAR") for f in container.decode(stream)]
    except (av.FFmpegError, IndexError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{path}: PyAV cannot decode this video ({reason}); the file is corrupt or truncated "
            "(an interrupted copy or write?). Regenerate it with `v4s make-data` or copy it again."
        ) from None
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def video_backend() -> str:
    """'decord' where it is installed, else 'pyav' (read_video's fallback)."""
    return "decord" if _decord() is not None else "pyav"


def read_video(path, expected_frames: int | None = None) -> np.ndarray:
    """Read every frame of a video -> uint8 (N, H, W, 3); DataError if unreadable or short.

    Reads with decord where it is installed, else with PyAV (the same frames on the course's clips)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file. Regenerate the clip (v4s make-data) or see docs/DATA.md.")
    decord = _decord()
    frames = _read_frames_decord(decord, path) if decord is not None else _read_frames_pyav(path)
    n = len(frames)
    if n == 0:
        raise DataError(f"{path}: the video has no frames; regenerate it.")
    if expected_frames is not None and n != expected_frames:
        raise DataError(
            f"{path}: the video has {n} frames but meta.json describes {expected_frames}; the video is truncated or "
            "meta.json belongs to another clip. Regenerate the clip with `v4s make-data`."
        )
    return frames

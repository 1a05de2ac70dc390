"""Context sampling: which frames of the recorded scan the model sees as context.

The Wan VAE compresses time 4x causally: frame 0 becomes latent 0 on its own, then every 4 frames become
one latent. So the context is frame 0 plus `n_chunks` chunks of 4 consecutive scan frames, each chunk
starting at a multiple of 4. A chunk that starts at frame 4j is exactly one latent, and its source index
tells the model where it sits in time (the RoPE position `4j // 4 = j`, see `rope.context_positions`).

The paper spreads the chunks irregularly over the whole scan ("non-contiguous" sampling): the model sees
more of the room for the same number of frames, and because the true time positions go into RoPE it
still knows how far apart the chunks are. The ablation ("contiguous") takes one unbroken run of chunks
of the same length: same frame count, less of the room (paper: SD 0.3246 vs 0.1099).

    scan  : 0 1 2 3 | 4 5 6 7 | 8 9 10 11 | 12 13 14 15 | 16 17 18 19 | 20 ...
    slots :   (frame 0)  slot 1    slot 2      slot 3        slot 4
    noncontiguous, 2 chunks: [0, 4,5,6,7, 16,17,18,19]     (a random subset of slots, in time order)
    contiguous,    2 chunks: [0, 8,9,10,11, 12,13,14,15]   (a random window of adjacent slots)
"""
from __future__ import annotations

import numpy as np

from .config import TEMPORAL_STRIDE
from .utils import V4SError

MODES = ("noncontiguous", "contiguous")


def n_chunk_slots(n_scan_frames: int) -> int:
    """How many whole 4-frame chunks starting at 4, 8, 12, ... fit in a scan of this length."""
    return max(0, (n_scan_frames - TEMPORAL_STRIDE) // TEMPORAL_STRIDE)


def sample_context_frames(n_scan_frames: int, n_chunks: int, rng=None, mode: str = "noncontiguous") -> list[int]:
    """Source indices of the context frames: `[0] + n_chunks` chunks of 4, sorted, `1 + 4*n_chunks` long.

    `rng` is a numpy Generator or an int seed (same seed, same indices).
    """
    if mode not in MODES:
        raise V4SError(f"unknown context sampling mode {mode!r}; choose one of {MODES}")
    if n_chunks < 0:
        raise V4SError(f"n_chunks={n_chunks} must be >= 0")
    n_slots = n_chunk_slots(n_scan_frames)
    if n_chunks > n_slots:
        raise V4SError(
            f"the scan has {n_scan_frames} frames, which holds only {n_slots} 4-frame chunks starting at "
            f"4, 8, ...; {n_chunks} were asked for. Record a scan of at least {TEMPORAL_STRIDE * (n_chunks + 1)} frames or ask for fewer chunks "
            "(ClipConfig.context_chunks)."
        )
    if mode == "noncontiguous" and 1 < n_chunks == n_slots:
        raise V4SError(
            f"non-contiguous sampling needs gaps, but {n_chunks} chunks fill the whole {n_scan_frames}-frame scan. "
            "Use a longer scan (ClipConfig.scan_frames), fewer chunks, or mode='contiguous'."
        )
    rng = np.random.default_rng(rng)
    slots = np.arange(1, n_slots + 1)  # chunk slot j covers frames 4j .. 4j+3
    if mode == "contiguous":
        first = rng.integers(0, n_slots - n_chunks + 1)
        chosen = slots[first:first + n_chunks]
    else:
        while True:  # a random subset of slots; redraw the rare subset that happens to be one unbroken run
            chosen = np.sort(rng.choice(slots, size=n_chunks, replace=False))
            if n_chunks <= 1 or np.any(np.diff(chosen) > 1):
                break
    frames = [0] + [int(TEMPORAL_STRIDE * j + k) for j in chosen for k in range(TEMPORAL_STRIDE)]
    return frames


def context_positions(frame_indices, stride: int = TEMPORAL_STRIDE):
    """Latent positions of a context: latent 0 is scan frame 0 alone, latent j is chunk j -> `start // stride`.

    `frame_indices`: source index of every context frame (1 + 4k of them, first 0, chunks of 4 consecutive
    frames in time order), as `ClipDataset` yields them. A (B, Fc) array gives a list per sample.
    Here, beside the sampler that picks the chunks, so the data layer computes every item's positions once
    (ClipDataset's `context_positions`); rope.py re-exports it.
    """
    idx = np.asarray(frame_indices, dtype=np.int64)
    if idx.ndim == 2:
        return [context_positions(row, stride) for row in idx]
    idx = idx.tolist()
    n = len(idx)
    if n == 0:  # no context at all (the first-frame-only ablation)
        return []
    if (n - 1) % stride:
        raise V4SError(f"a context has 1 + {stride}k frames (first frame + chunks of {stride}); got {n} indices")
    chunks = [idx[i:i + stride] for i in range(1, n, stride)]
    for c in chunks:
        if c != list(range(c[0], c[0] + stride)):
            raise V4SError(f"context chunk {c} is not {stride} consecutive frames; "
                           "sample chunks with v4s_lite.sampling")
    positions = [idx[0] // stride] + [c[0] // stride for c in chunks]
    if any(b <= a for a, b in zip(positions, positions[1:])):
        raise V4SError(f"context chunks must be in time order and start in different latents; positions {positions}")
    return positions

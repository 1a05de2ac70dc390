import numpy as np
import pytest

from v4s_lite.config import LITE, PAPER, PAPER_TRAIN, QUICK
from v4s_lite.sampling import n_chunk_slots, sample_context_frames
from v4s_lite.utils import V4SError

CONFIGS = [QUICK, LITE, PAPER, PAPER_TRAIN]


def _chunks(idx):
    return [idx[i:i + 4] for i in range(1, len(idx), 4)]


@pytest.mark.parametrize("mode", ["noncontiguous", "contiguous"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=["quick", "lite", "paper", "paper_train"])
def test_layout_properties(cfg, mode):
    for seed in range(20):
        idx = sample_context_frames(cfg.scan_frames, cfg.context_chunks, seed, mode)
        assert len(idx) == cfg.context_frames == 1 + 4 * cfg.context_chunks
        assert idx[0] == 0
        assert idx == sorted(idx) and len(set(idx)) == len(idx)
        assert max(idx) < cfg.scan_frames
        for chunk in _chunks(idx):
            assert chunk[0] % 4 == 0 and chunk[0] >= 4
            assert chunk == list(range(chunk[0], chunk[0] + 4))


def test_deterministic_per_seed_and_varies_across_seeds():
    a = sample_context_frames(129, 8, 3)
    assert a == sample_context_frames(129, 8, np.random.default_rng(3))
    assert len({tuple(sample_context_frames(129, 8, s)) for s in range(20)}) > 15


def test_noncontiguous_has_gaps_contiguous_has_none():
    for seed in range(50):
        starts = np.array(sample_context_frames(65, 4, seed, "noncontiguous")[1::4])
        assert np.any(np.diff(starts) > 4), starts
        starts = np.array(sample_context_frames(65, 4, seed, "contiguous")[1::4])
        assert np.all(np.diff(starts) == 4), starts
    # even when only one layout of the slots would be contiguous, non-contiguous never returns it
    for seed in range(50):
        starts = np.diff(sample_context_frames(4 * 6, 4, seed)[1::4])
        assert np.any(starts > 4)


def test_noncontiguous_covers_the_scan_uniformly():
    # every chunk slot should be picked about equally often (a uniform random subset of the slots)
    counts = np.zeros(n_chunk_slots(129) + 1)
    for seed in range(2000):
        for s in sample_context_frames(129, 8, seed)[1::4]:
            counts[s // 4] += 1
    freq = counts[1:] / counts[1:].sum()
    assert n_chunk_slots(129) == 31
    assert np.abs(freq * 31 - 1).max() < 0.15
    # the contiguous window starts anywhere a window of 8 fits
    firsts = {sample_context_frames(129, 8, s, "contiguous")[1] for s in range(500)}
    assert firsts == set(range(4, 4 * (31 - 8 + 1) + 1, 4))


def test_errors():
    with pytest.raises(V4SError, match="holds only 3 4-frame chunks"):
        sample_context_frames(17, 4, 0)  # frames 4..15 hold 3 chunks
    assert len(sample_context_frames(20, 4, 0, "contiguous")) == 17  # exactly enough frames for contiguous
    with pytest.raises(V4SError, match="needs gaps"):
        sample_context_frames(20, 4, 0, "noncontiguous")
    with pytest.raises(V4SError, match="unknown context sampling mode"):
        sample_context_frames(65, 4, 0, "random")
    with pytest.raises(V4SError, match="n_chunks"):
        sample_context_frames(65, -1, 0)
    assert sample_context_frames(65, 0, 0) == [0]

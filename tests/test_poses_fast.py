"""The pose estimator's fewer, larger render calls (2026-12-03b) estimate exactly what it estimated before: each
Levenberg-Marquardt iteration renders its trial poses and the next finite differences in one call
(`PoseEstimator(speculate=True)`), the scene's render tables are built once (`render(tensors=)`); poses,
residuals and the judge's metrics are bit for bit those of the old path (`speculate=False`)."""
import json

import numpy as np
import pytest

from v4s_lite import evaluate as E
from v4s_lite import poses
from v4s_lite.config import ClipConfig

SEED = 8  # tests/test_evaluate.py's room and short walk
CFG = ClipConfig(width=104, height=64, scan_frames=17, context_chunks=2, target_chunks=2, box_frames=4)


@pytest.fixture(scope="module")
def clip(one_thread):
    from v4s_lite.data import clip_meta
    from v4s_lite.scene import make_scene
    from v4s_lite.world import make_clip

    scene = make_scene(SEED)
    c = make_clip(scene, "grounding", CFG, seed=SEED)
    return scene, json.loads(json.dumps(clip_meta(c, CFG)))


def test_render_with_prebuilt_scene_tables_is_the_same_picture(clip):
    from v4s_lite.render import render, scene_tensors

    scene, meta = clip
    c2w = np.asarray(meta["target"]["c2w"])[:3]
    a = render(scene, c2w, meta["K"], 104, 64, antialias=2)
    b = render(scene, c2w, meta["K"], 104, 64, antialias=2, tensors=scene_tensors(scene))
    for x, y in zip((a.rgb, a.depth, a.instance, a.coverage), (b.rgb, b.depth, b.instance, b.coverage)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("video", ["ground truth", "ground truth through the codec", "shuffled frames"])
def test_one_render_call_per_iteration_estimates_the_same_poses_and_metrics(clip, video):
    """speculate=True renders the finite differences around trial poses that get rejected too (wasted renders)
    but must not change a number: the old path (speculate=False) and the new one, every metric score_clip
    returns, bitwise; and the new path makes fewer render calls."""
    from v4s_lite.codec import LiteCodec

    scene, meta = clip
    codec = LiteCodec()
    frames = E.calibration_videos(meta, codec)[video]
    deg = codec if "codec" in video else None
    out, calls = {}, {}
    for speculate in (False, True):
        est = poses.PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg, speculate=speculate)
        n = [0]
        real = est._render

        def counted(*a, real=real, n=n, **k):
            n[0] += 1
            return real(*a, **k)
        est._render = counted
        out[speculate] = E.score_clip(meta, frames, est, lpips=False)
        calls[speculate] = n[0]
    old, new = out[False], out[True]
    np.testing.assert_array_equal(old["c2w"], new["c2w"])
    np.testing.assert_array_equal(old["residuals"], new["residuals"])
    np.testing.assert_array_equal(old["render"], new["render"])
    assert old.keys() == new.keys()
    for k, v in old.items():
        if isinstance(v, float) and not np.isnan(v):
            assert new[k] == v, k
        elif isinstance(v, (bool, int, str)):
            assert new[k] == v, k
    assert calls[True] < calls[False]

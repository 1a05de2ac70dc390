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


def _antialias_two_passes(st, rays, groups, rgb, obj, a: int):
    """render._antialias before 2026-12-03b (object edges and room edges traced in two calls), for the test below."""
    import torch

    from v4s_lite.render import EDGE_CONTRAST, _take, _trace

    n, H, W, _ = rgb.shape
    id_edge = torch.zeros((n, H, W), dtype=torch.bool, device=rgb.device)
    edge = torch.zeros_like(id_edge)
    for dim in (1, 2):
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[dim], hi[dim] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        step_id = obj[lo] != obj[hi]
        step = step_id | ((rgb[lo] - rgb[hi]).abs().amax(-1) > EDGE_CONTRAST)
        id_edge[lo] |= step_id
        id_edge[hi] |= step_id
        edge[lo] |= step
        edge[hi] |= step
    full = (edge & (id_edge | (obj != 0))).reshape(-1)
    room_only = (edge.reshape(-1) & ~full)
    out = rgb.reshape(-1, 3).clone()
    for mask, use_objects in ((full, True), (room_only, False)):
        pix = torch.nonzero(mask)[:, 0]
        E = len(pix)
        if E == 0:
            continue
        cam = torch.div(pix, H * W, rounding_mode="floor")
        rem = pix - cam * (H * W)
        row = torch.div(rem, W, rounding_mode="floor")
        col = rem - row * W
        offs = (torch.arange(a, device=rgb.device, dtype=torch.float32) + 0.5) / a
        oy, ox = torch.meshgrid(offs, offs, indexing="ij")
        S = a * a
        o, d = rays(cam.repeat_interleave(S), (col[:, None] + ox.reshape(-1)).reshape(-1).float(),
                    (row[:, None] + oy.reshape(-1)).reshape(-1).float())
        sub_groups = []
        if use_objects:
            edge_id = torch.full((len(mask),), -1, dtype=torch.long, device=rgb.device)
            edge_id[pix] = torch.arange(E, device=rgb.device)
            for k, ray, prim in groups:
                keep = torch.nonzero(_take(mask, ray))[:, 0]
                e_idx = _take(edge_id, _take(ray, keep))
                sub_groups.append((k, (e_idx[:, None] * S + torch.arange(S, device=rgb.device)).reshape(-1),
                                   _take(prim, keep).repeat_interleave(S)))
        sub, _, _, _ = _trace(st, o, d, sub_groups)
        out.index_copy_(0, pix, sub.view(E, S, 3).mean(1))
    return out.view(n, H, W, 3)


@pytest.mark.parametrize("antialias", [2, 3])
def test_one_antialias_trace_gives_the_pictures_of_two(clip, monkeypatch, antialias):
    """render._antialias traces the object edges and the room edges in one call now: the same pictures, bit for
    bit, as the two calls before, on the walk's views and on random poses in the room (at two sizes)."""
    from v4s_lite import render as R

    scene, meta = clip
    rng = np.random.default_rng(1)
    W, D, _ = scene.room
    p = np.c_[rng.uniform(0.3, W - 0.3, 12), rng.uniform(0.3, D - 0.3, 12), np.full(12, 1.5),
              rng.uniform(-3, 3, 12), rng.uniform(-0.8, 0.2, 12)]
    c2w = np.concatenate([np.asarray(meta["target"]["c2w"]), poses.pose_matrices(p)])
    for w, h in ((104, 64), (52, 32)):
        K = poses._scaled_K(meta["K"], w / 104, h / 64)
        new = R.render(scene, c2w, K, w, h, antialias=antialias)
        with monkeypatch.context() as m:
            m.setattr(R, "_antialias", _antialias_two_passes)
            old = R.render(scene, c2w, K, w, h, antialias=antialias)
        np.testing.assert_array_equal(new.rgb, old.rgb)
        np.testing.assert_array_equal(new.depth, old.depth)

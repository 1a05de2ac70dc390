import numpy as np
import pytest
import torch

from v4s_lite.camera import intrinsics, look_at, project, projected_box
from v4s_lite.render import _SceneTensors, _trace, boxes_from_instance, render
from v4s_lite.scene import PALETTE, Primitive, Scene, SceneObject, is_strong_red, make_scene
from v4s_lite.trajectories import scan_trajectory
from v4s_lite.utils import V4SError

W, H = 64, 40


@pytest.fixture(scope="module")
def views():
    scene = make_scene(3)
    c2w = scan_trajectory(scene, 9, seed=3)
    K = intrinsics(W, H)
    return scene, c2w, K, render(scene, c2w, K, W, H, antialias=1)


def test_depth_unprojects_onto_the_surface_that_the_instance_buffer_names(views):
    scene, c2w, K, out = views
    v, u = np.mgrid[0:H, 0:W]
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
    W_, D_, H_ = scene.room
    for i in range(len(c2w)):
        cam = pix * out.depth[i].reshape(-1, 1)
        X = cam @ c2w[i][:3, :3].T + c2w[i][:3, 3]
        uv, z = project(X, c2w[i], K)  # project() and the renderer share one camera model
        np.testing.assert_allclose(uv, pix[:, :2] / pix[:, 2:] * K[0, 0] + K[:2, 2], atol=2e-3)
        inst = out.instance[i].reshape(-1)
        room = inst == 0
        to_plane = np.min(np.abs(np.concatenate([X[room], np.array([W_, D_, H_]) - X[room]], 1)), 1)
        assert to_plane.max() < 2e-3  # room pixels lie on a wall, the floor or the ceiling
        for o in scene.objects:
            m = inst == o.id
            if m.any():
                lo, hi = o.aabb
                outside = np.maximum(np.maximum(lo - X[m], X[m] - hi), 0).max(1)
                assert outside.max() < 2e-3, f"object {o.id} pixel lies off its box"


def test_instance_box_lies_inside_projected_3d_box(views):
    scene, c2w, K, out = views
    boxes, visible = boxes_from_instance(out.instance, len(scene.objects))
    checked = 0
    for i in range(len(c2w)):
        for o in scene.objects:
            pb = projected_box(o, c2w[i], K, W, H)
            if visible[i, o.id - 1] and pb is not None:
                b = boxes[i, o.id - 1]
                assert b[0] >= np.floor(pb[0]) and b[1] >= np.floor(pb[1]) and b[2] <= np.ceil(pb[2]) and b[3] <= np.ceil(pb[3])
                checked += 1
    assert checked >= 5


def test_culling_matches_brute_force_all_pairs(views):
    scene, c2w, K, out = views
    st = _SceneTensors(scene, "cpu")
    n = len(c2w)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    dc = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1).reshape(-1, 3).float()
    R = torch.tensor(c2w[:, :3, :3], dtype=torch.float32)
    d = torch.einsum("nij,mj->nmi", R, dc).reshape(-1, 3)
    o = torch.tensor(c2w[:, :3, 3], dtype=torch.float32).repeat_interleave(H * W, 0)
    groups = []  # every ray against every primitive, one group per primitive kind
    for k in range(4):
        prims = torch.nonzero(st.kind == k)[:, 0]
        groups.append((k, torch.arange(n * H * W).repeat_interleave(len(prims)), prims.repeat(n * H * W)))
    _, t, obj, _ = _trace(st, o, d, groups)
    assert np.array_equal(obj.view(n, H, W).numpy(), out.instance)
    np.testing.assert_allclose(t.view(n, H, W).numpy(), out.depth, rtol=1e-5, atol=1e-3)


def test_deterministic_and_independent_of_chunking():
    scene = make_scene(5)
    c2w = scan_trajectory(scene, 5, seed=5)
    K = intrinsics(W, H)
    a = render(scene, c2w, K, W, H)
    b = render(scene, c2w, K, W, H, max_rays=W * H)  # one camera at a time
    for name in ("rgb", "depth", "instance", "coverage"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.rgb.dtype == np.uint8 and a.depth.dtype == np.float32 and a.instance.dtype == np.int16


def test_adaptive_antialias_approaches_full_supersampling():
    scene = make_scene(1)
    c2w = scan_trajectory(scene, 3, seed=1)
    K = intrinsics(W, H)
    ref = render(scene, c2w, intrinsics(2 * W, 2 * H), 2 * W, 2 * H, antialias=1).rgb.astype(float)
    ref = ref.reshape(len(c2w), H, 2, W, 2, 3).mean((2, 4))
    err_aa = np.abs(render(scene, c2w, K, W, H, antialias=2).rgb - ref).mean()
    err_none = np.abs(render(scene, c2w, K, W, H, antialias=1).rgb - ref).mean()
    assert err_aa < 0.4 * err_none and err_aa < 1.5, (err_aa, err_none)


def _two_box_scene():
    front = SceneObject(1, "cabinet", "blue", [Primitive("box", np.array([2.0, 2.0, 0.5]), np.array([0.3, 0.3, 0.5]))])
    back = SceneObject(2, "cabinet", "green", [Primitive("box", np.array([3.5, 2.2, 0.6]), np.array([0.4, 0.4, 0.6]))])
    tex = make_scene(0).textures
    return Scene(0, (5.0, 5.0, 2.8), tex, [front, back])


def test_coverage_counts_the_unoccluded_footprint():
    scene = _two_box_scene()
    c2w = look_at([0.5, 2.0, 1.0], [3.5, 2.2, 0.6])[None]
    K = intrinsics(W, H)
    out = render(scene, c2w, K, W, H, antialias=1)
    back = SceneObject(1, "cabinet", "green", scene.objects[1].primitives)
    alone = render(Scene(0, scene.room, scene.textures, [back]), c2w, K, W, H, antialias=1)
    assert out.coverage[0, 1] == (alone.instance[0] == 1).sum()
    with pytest.raises(V4SError, match="ids"):
        render(Scene(0, scene.room, scene.textures, [scene.objects[1]]), c2w, K, W, H)
    _, vis = boxes_from_instance(out.instance, 2, out.coverage)
    assert vis[0, 0] == 1.0 and 0.0 < vis[0, 1] < 0.9  # the front box hides part of the back one


def test_boxes_from_instance_exact():
    inst = np.zeros((2, 6, 8), np.int16)
    inst[0, 1:3, 2:5] = 1
    inst[1, 4, 7] = 2
    boxes, vis = boxes_from_instance(inst, 3)
    np.testing.assert_array_equal(boxes[0, 0], [2, 1, 5, 3])
    np.testing.assert_array_equal(boxes[1, 1], [7, 4, 8, 5])
    assert np.isnan(boxes[0, 1]).all() and np.isnan(boxes[:, 2]).all()
    np.testing.assert_array_equal(vis, [[1, 0, 0], [0, 1, 0]])
    _, frac = boxes_from_instance(inst, 3, coverage=np.array([[12, 0, 0], [0, 4, 0]]))
    np.testing.assert_allclose(frac, [[0.5, 0, 0], [0, 0.25, 0]])


def test_no_strong_red_pixels():
    assert not any(is_strong_red(c) for c in PALETTE.values())
    for seed in (0, 2):
        scene = make_scene(seed)
        out = render(scene, scan_trajectory(scene, 5, seed), intrinsics(W, H), W, H)
        rgb = out.rgb.astype(float) / 255
        red = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.35) & (rgb[..., 2] < 0.35)
        assert not red.any()


def test_bad_input_raises():
    scene = make_scene(0)
    K = intrinsics(W, H)
    with pytest.raises(V4SError, match="c2w"):
        render(scene, np.eye(3), K, W, H)
    with pytest.raises(V4SError, match="antialias"):
        render(scene, np.eye(4), K, W, H, antialias=0)
    with pytest.raises(V4SError, match="coverage"):
        boxes_from_instance(np.zeros((1, 4, 4)), 2, coverage=np.zeros((1, 3)))

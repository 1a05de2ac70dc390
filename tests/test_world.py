import json
import math

import numpy as np
import pytest

from v4s_lite.camera import intrinsics, look_at, pose_from_yaw_pitch, project, yaw_pitch
from v4s_lite.config import QUICK
from v4s_lite.language import describe, make_instruction, parse_command
from v4s_lite.render import boxes_from_instance, render
from v4s_lite.scene import CATEGORIES, PALETTE, Primitive, Scene, SceneObject, is_free, is_strong_red, make_scene
from v4s_lite.trajectories import approach_trajectory, navigation_trajectory, random_commands, scan_trajectory
from v4s_lite.utils import V4SError
from v4s_lite.world import make_clip

W, H = 64, 40


def test_palette_and_categories():
    assert len(CATEGORIES) >= 8
    for c in PALETTE.values():  # at every shading level, since the renderer only darkens
        assert not any(is_strong_red(np.array(c) * f) for f in np.linspace(0.05, 1, 400))
    assert is_strong_red((0.9, 0.1, 0.1))


@pytest.mark.parametrize("seed", range(6))
def test_make_scene_is_valid(seed):
    s = make_scene(seed)
    assert 4 <= len(s.objects) <= 10
    assert [o.id for o in s.objects] == list(range(1, len(s.objects) + 1))
    Wr, Dr, Hr = s.room
    rects = []
    for o in s.objects:
        lo, hi = o.aabb
        assert (lo >= -1e-9).all() and hi[0] <= Wr and hi[1] <= Dr and hi[2] < Hr
        assert o.category in CATEGORIES and o.color in PALETTE
        rects.append((lo[0], lo[1], hi[0], hi[1]))
    for i, a in enumerate(rects):  # footprints do not overlap
        for b in rects[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_make_scene_deterministic_and_arguments():
    assert make_scene(7).to_dict() == make_scene(7).to_dict()
    assert make_scene(7).to_dict() != make_scene(8).to_dict()
    s = make_scene(1, n_objects=5, categories=["chair", "plant"], colors=["blue", "teal"])
    assert len(s.objects) == 5 and {o.category for o in s.objects} <= {"chair", "plant"}
    with pytest.raises(V4SError, match="category"):
        make_scene(0, categories=["spaceship"])
    with pytest.raises(V4SError, match="colour"):
        make_scene(0, colors=["red"])
    with pytest.raises(V4SError, match="look-alikes"):
        make_scene(0, n_objects=5, categories=["chair"], colors=["blue", "teal"])


def test_scene_round_trip_renders_identically():
    s = make_scene(4)
    s2 = Scene.from_dict(json.loads(json.dumps(s.to_dict())))
    c2w = scan_trajectory(s, 3, seed=0)
    a, b = render(s, c2w, intrinsics(W, H), W, H), render(s2, c2w, intrinsics(W, H), W, H)
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.instance.tobytes() == b.instance.tobytes()
    with pytest.raises(V4SError, match="scene dict"):
        Scene.from_dict({"room": [1, 2, 3]})


def test_intrinsics_look_at_project():
    K = intrinsics(104, 64, fov_deg=90)
    assert K[0, 0] == pytest.approx(52) and K[0, 2] == 52 and K[1, 2] == 32
    c2w = look_at([1.0, 2.0, 1.5], [4.0, 3.0, 0.5])
    R = c2w[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1) and abs(R[2, 0]) < 1e-12  # image x axis stays horizontal
    uv, z = project(np.array([[4.0, 3.0, 0.5], [4.0, 3.0, 2.5]]), c2w, K)
    np.testing.assert_allclose(uv[0], [52, 32], atol=1e-9)
    assert z[0] == pytest.approx(math.sqrt(9 + 1 + 1)) and uv[1, 1] < 32  # higher points appear higher (smaller v)
    yaw, pitch = yaw_pitch(pose_from_yaw_pitch([0, 0, 1], 0.3, -0.2))
    assert yaw == pytest.approx(0.3) and pitch == pytest.approx(-0.2)
    with pytest.raises(V4SError):
        look_at([0, 0, 0], [0, 0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scan_sees_every_object_and_stays_free(seed):
    s = make_scene(seed)
    c2w = scan_trajectory(s, 33, seed)
    assert is_free(s, c2w[:, :2, 3]).all()
    out = render(s, c2w, intrinsics(W, H), W, H, antialias=1)
    seen = set(np.unique(out.instance)) - {0}
    assert seen == {o.id for o in s.objects}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_approach_ends_centred_on_visible_target(seed):
    s = make_scene(seed)
    tid = 1 + seed % len(s.objects)
    c2w = approach_trajectory(s, tid, 17, 4, seed)
    assert c2w.shape == (17, 4, 4)
    assert all(np.array_equal(c2w[-1], c2w[-k]) for k in range(2, 6))  # 4 held frames + the arrival frame
    assert not np.array_equal(c2w[-6], c2w[-1])
    assert is_free(s, c2w[:, :2, 3]).all()
    assert np.linalg.norm(np.diff(c2w[:, :2, 3], axis=0), axis=1).max() < 1.0  # walks, no teleport
    out = render(s, c2w[-1:], intrinsics(W, H), W, H, antialias=1)
    boxes, vis = boxes_from_instance(out.instance, len(s.objects), out.coverage)
    b = boxes[0, tid - 1]
    assert vis[0, tid - 1] > 0.5
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    assert abs(cx - W / 2) < 0.15 * W and abs(cy - H / 2) < 0.2 * H
    assert max((b[2] - b[0]) / W, (b[3] - b[1]) / H) > 0.3  # comfortable: not a speck in the distance


def test_default_walks_are_unchanged_by_the_start_option():
    # the poses of approach_trajectory before `start` existed (2026-12-04): the default start draws what it drew
    import hashlib

    for seed, want in ((0, "8b9a00c1fc125c88"), (7, "52fbb5e292513a44"), (300000, "41265b7949730ade")):
        from v4s_lite.data import split_scene

        scene, tid = split_scene(seed, "id")
        c2w = approach_trajectory(scene, tid if tid is not None else scene.objects[0].id, 25, 8, seed)
        assert hashlib.sha256(np.round(c2w, 6).tobytes()).hexdigest()[:16] == want, seed


def test_canonical_scans_start_in_one_place_and_turn_one_way_and_random_scans_are_unchanged():
    import hashlib

    from v4s_lite.data import split_scene
    from v4s_lite.trajectories import scan_ring_radii

    s = make_scene(0)
    a, b = scan_trajectory(s, 33, 0, rule="canonical"), scan_trajectory(s, 33, 5, rule="canonical")
    np.testing.assert_array_equal(a, b)  # the seed no longer moves the ring's start or direction
    assert not np.array_equal(scan_trajectory(s, 33, 0), scan_trajectory(s, 33, 5))  # the random rule's does
    Wr, Dr, _ = s.room
    rx, _ = scan_ring_radii(Wr, Dr)
    np.testing.assert_allclose(a[0, :2, 3], [Wr / 2 + rx, Dr / 2], atol=1e-9)  # starts on the room's +x side
    assert a[1, 1, 3] > Dr / 2  # and turns counter-clockwise
    assert is_free(s, a[:, :2, 3]).all()
    # the random scans' poses from before the rule existed (2026-12-04): the default draws what it drew
    for seed, want in ((0, "8037a369da4717db"), (7, "582daba4c1b379f9"), (300000, "bc07bba53e21256c")):
        scene, _ = split_scene(seed, "id")
        assert hashlib.sha256(np.round(scan_trajectory(scene, 33, seed), 6).tobytes()).hexdigest()[:16] == want, seed
    with pytest.raises(V4SError, match="canonical"):
        scan_trajectory(s, 33, 0, rule="spiral")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_walk_to_a_scan_view_ends_on_the_scans_best_view_of_the_target(seed):
    """make-data --end scan: the walk's final (held) view is the scan frame that frames the target best, so the
    answer is in the context video; the default walk is unchanged (its end is drawn as before)."""
    from v4s_lite.render import framing_score
    from v4s_lite.world import best_scan_view

    cfg = QUICK.with_(width=W, height=H, scan_frames=33, context_chunks=4)
    s = make_scene(seed)
    clip = make_clip(s, "grounding", cfg, seed=seed, end="scan")
    i, t = clip.end_scan_frame, clip.target_id
    assert i is not None and 0 <= i < cfg.scan_frames
    hold = cfg.box_frames + 1
    assert all(np.array_equal(c, clip.scan_c2w[i]) for c in clip.target_c2w[-hold:])
    assert all(f.tobytes() == clip.scan_rgb[i].tobytes() for f in clip.target_rgb[-hold:])  # a frame of the scan
    b = clip.scan_boxes[:, t - 1]
    inside = (b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 2] < W) & (b[:, 3] < H) & (clip.scan_visible[:, t - 1] >= 0.9)
    score = framing_score(b, inside, W, H)
    assert score[i] == score.max() and np.isfinite(score[i])  # no other scan frame frames it better
    assert (clip.target_visible[-cfg.box_frames:, t - 1] >= 0.9).all()
    assert is_free(s, clip.target_c2w[:, :2, 3]).all()
    default = make_clip(s, "grounding", cfg, seed=seed)
    assert default.end_scan_frame is None and default.instruction == clip.instruction
    assert np.array_equal(default.scan_c2w, clip.scan_c2w) and not np.array_equal(default.target_c2w[-1],
                                                                                   clip.target_c2w[-1])
    # an object no scan frame shows whole: no scan view to end at (make_clip then keeps the default end)
    none = np.full_like(clip.scan_boxes, np.nan)
    assert best_scan_view(none, np.zeros_like(clip.scan_visible), t, W, H) is None
    with pytest.raises(V4SError, match="grounding"):
        make_clip(s, "navigation", cfg, seed=seed, end="scan")
    with pytest.raises(V4SError, match="end must be one of"):
        make_clip(s, "grounding", cfg, seed=seed, end="ring")
    with pytest.raises(V4SError, match="free camera pose"):
        approach_trajectory(s, t, 17, 4, seed, end=np.eye(3))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_walk_from_a_scan_view_starts_on_that_frame_and_still_finds_the_target(seed):
    cfg = QUICK.with_(width=W, height=H, scan_frames=33, context_chunks=4)
    s = make_scene(seed)
    clip = make_clip(s, "grounding", cfg, seed=seed, start="scan")
    i = clip.start_scan_frame
    assert 0 <= i < cfg.scan_frames
    assert np.array_equal(clip.target_c2w[0], clip.scan_c2w[i])
    assert clip.target_rgb[0].tobytes() == clip.scan_rgb[i].tobytes()  # the first frame is a frame of the scan
    assert is_free(s, clip.target_c2w[:, :2, 3]).all()
    assert np.linalg.norm(np.diff(clip.target_c2w[:, :2, 3], axis=0), axis=1).max() < 1.0  # walks, no teleport
    assert (clip.target_visible[-cfg.box_frames:, clip.target_id - 1] > 0.5).all()
    default = make_clip(s, "grounding", cfg, seed=seed)
    assert default.start_scan_frame is None and default.instruction == clip.instruction
    assert np.array_equal(default.target_c2w[-1], clip.target_c2w[-1])  # the same destination, another start
    with pytest.raises(V4SError, match="grounding"):
        make_clip(s, "navigation", cfg, seed=seed, start="scan")
    with pytest.raises(V4SError, match="start must be one of"):
        make_clip(s, "grounding", cfg, seed=seed, start="ring")
    with pytest.raises(V4SError, match="free camera pose"):
        approach_trajectory(s, clip.target_id, 17, 4, seed, start=np.eye(3))


def test_navigation_moves_as_commanded():
    start = pose_from_yaw_pitch([1.0, 1.0, 1.5], 0.0, -0.2)  # facing +x
    c2w = navigation_trajectory(start, ["move forward 1.5 m", "turn left 90 degrees", "move forward 1 m",
                                        "move right 0.5 m"], 21)
    assert c2w.shape == (21, 4, 4)
    np.testing.assert_allclose(c2w[0], start, atol=1e-12)
    np.testing.assert_allclose(c2w[-1][:3, 3], [1.0 + 1.5 + 0.5, 1.0 + 1.0, 1.5], atol=1e-9)
    yaw, pitch = yaw_pitch(c2w[-1])
    assert yaw == pytest.approx(math.pi / 2) and pitch == pytest.approx(-0.2)
    back = navigation_trajectory(c2w[-1], ["turn right 90 degrees", "move backward 1.5 m"], 5)
    assert back[-1][0, 3] == pytest.approx(1.5) and yaw_pitch(back[-1])[0] == pytest.approx(0)
    steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
    assert steps.max() < 0.5  # constant speed, frames shared over the commands


@pytest.mark.parametrize("bad", ["fly up 2 m", "move forward", "turn left 30 m", "move forward -1 m",
                                 "turn around", "move forward 1.5 km", "", "turn left 0 degrees", 3])
def test_bad_commands_raise(bad):
    with pytest.raises(V4SError):
        parse_command(bad)


def test_parse_command_variants():
    assert parse_command("Move forward 1.5 m.").amount == 1.5
    assert parse_command("walk back 2 metres").direction == "backward"
    assert parse_command("turn right 45 degrees").direction == "right"
    with pytest.raises(V4SError):
        navigation_trajectory(np.eye(4), [], 5)


def test_random_commands_stay_free():
    for seed in range(4):
        s = make_scene(seed)
        start, cmds = random_commands(s, seed)
        c2w = navigation_trajectory(start, cmds, 41)
        assert is_free(s, c2w[:, :2, 3]).all()
        assert any(c.startswith("move") for c in cmds)


def test_instructions_name_and_disambiguate():
    tex = make_scene(0).textures
    box = lambda x, y: [Primitive("box", np.array([x, y, 0.4]), np.array([0.25, 0.25, 0.4]))]  # noqa: E731
    objs = [SceneObject(1, "chair", "blue", box(1.0, 1.0)), SceneObject(2, "chair", "blue", box(4.0, 4.0)),
            SceneObject(3, "table", "white", box(1.8, 1.0)), SceneObject(4, "plant", "green", box(4.0, 1.0)),
            SceneObject(5, "chair", "yellow", box(2.5, 4.0))]
    s = Scene(0, (5.0, 5.0, 2.8), tex, objs)
    assert describe(s, 1) == "blue chair next to the white table"
    d2 = describe(s, 2)
    assert d2.startswith("blue chair") and "table" not in d2
    assert describe(s, 5) == "yellow chair"
    rng = np.random.default_rng(0)
    texts = {make_instruction(s, 4, rng) for _ in range(30)}
    assert len(texts) >= 5 and all("plant" in t for t in texts)


@pytest.mark.parametrize("task", ["grounding", "navigation"])
def test_make_clip(task):
    cfg = QUICK.with_(width=W, height=H, scan_frames=33, context_chunks=4)
    s = make_scene(2)
    clip = make_clip(s, task, cfg, seed=2)
    n = len(s.objects)
    assert clip.scan_rgb.shape == (cfg.scan_frames, H, W, 3) and clip.target_rgb.shape == (cfg.target_frames, H, W, 3)
    assert clip.target_boxes.shape == (cfg.target_frames, n, 4) and clip.scan_visible.shape == (cfg.scan_frames, n)
    assert clip.scan_boxes.shape == (cfg.scan_frames, n, 4) and clip.target_visible.shape == (cfg.target_frames, n)
    if task == "grounding":
        assert clip.commands is None and clip.target_id is not None
        assert (clip.target_visible[-cfg.box_frames:, clip.target_id - 1] > 0.5).all()
    else:
        assert clip.target_id is None and clip.commands and clip.instruction.endswith(".")
    again = make_clip(s, task, cfg, seed=2)
    assert again.target_rgb.tobytes() == clip.target_rgb.tobytes() and again.instruction == clip.instruction
    with pytest.raises(V4SError):
        make_clip(s, "dance", cfg, seed=0)


def test_named_colour_is_the_targets_own_colour_or_none():
    """The colour word of an instruction belongs to the target, never to the anchor that disambiguates it."""
    from v4s_lite.language import make_instruction, named_colour
    from v4s_lite.scene import make_scene

    assert named_colour("Walk to the green plant and look at it.") == "green"
    assert named_colour("Show me the brown cabinet next to the yellow lamp.") == "brown"
    assert named_colour("Find the plant.") is None and named_colour("Go to the lamp next to the bed.") is None
    named = 0
    for seed in range(40):
        scene = make_scene(seed)
        for obj in scene.objects[:3]:
            try:
                text = make_instruction(scene, obj.id, seed)
            except Exception:  # a target no phrase names uniquely (AmbiguousTarget): make-data skips it too
                continue
            c = named_colour(text)
            assert c in (None, obj.color), (text, obj.color)
            named += c is not None
    assert named > 30

"""Auxiliary box frames and the red-box detector: exact drawing, detection on clean, codec-blurred, noisy and
box-free frames, and the failure modes a detector could have (filled red things, red-ish objects)."""
import numpy as np
import pytest

from v4s_lite.bbox import RED, bbox_frames, box_iou, box_line_widths, detect_red_box, redness
from v4s_lite.codec import LiteCodec, frames_to_video, video_to_frames
from v4s_lite.config import QUICK
from v4s_lite.utils import V4SError

H, W = QUICK.height, QUICK.width
N, NB = QUICK.target_frames, QUICK.box_frames  # 17 frames, the last 4 carry the box
# Scene-like colours that the palette allows, including the reddest it may have (r <= 0.6 or g/b >= 0.35).
COLOURS = [(230, 128, 25), (140, 90, 50), (60, 120, 200), (200, 200, 60), (90, 170, 90), (150, 60, 60), (235, 235, 220)]


def scene_frames(seed, n=N):
    """A still 'room': wall colour plus overlapping coloured rectangles (objects), the same in every frame."""
    rng = np.random.default_rng(seed)
    f = np.empty((H, W, 3), np.uint8)
    f[:] = (150, 140, 120)
    f[H // 2:] = (110, 100, 90)  # floor
    for _ in range(7):
        x0, y0 = rng.integers(0, W - 12), rng.integers(0, H - 12)
        f[y0:y0 + rng.integers(12, 40), x0:x0 + rng.integers(12, 40)] = COLOURS[rng.integers(len(COLOURS))]
    return np.repeat(f[None], n, axis=0)


def random_box(seed):
    rng = np.random.default_rng(1000 + seed)
    x0, y0 = rng.integers(4, 56), rng.integers(4, 34)
    return np.array([x0, y0, min(W - 2, x0 + rng.integers(18, 44)), min(H - 2, y0 + rng.integers(16, 26))], float)


def codec_roundtrip(frames):
    codec = LiteCodec()
    return video_to_frames(codec.decode(codec.encode(frames_to_video(frames))))[0]


def test_line_widths_follow_the_paper_and_scale():
    paper = box_line_widths(20, 416)
    assert 1 <= paper[0] <= 2 and 7 <= paper[-1] <= 9 and np.all(np.diff(paper) >= 0)
    lite = box_line_widths(NB, W)
    assert lite[0] == 1 and lite[-1] == 2 and np.all(np.diff(lite) >= 0)
    assert box_line_widths(20, 832)[-1] == 2 * paper[-1]  # twice the width, twice the line


def test_bbox_frames_draws_an_inward_thickening_red_outline_on_the_last_frames_only():
    frames = scene_frames(0)
    box = np.array([20.0, 10.0, 60.0, 40.0])
    widths = [1, 2, 3, 4]
    out = bbox_frames(frames, box, NB, widths=widths)
    assert np.array_equal(out[:-NB], frames[:-NB]) and not np.shares_memory(out, frames)
    red = np.all(out == RED, axis=-1)
    for f, t in zip(range(N - NB, N), widths):
        # the outer edge is the box (inclusive-exclusive) and the line grows inward by t pixels
        assert red[f, 10:10 + t, 20:60].all() and red[f, 40 - t:40, 20:60].all()
        assert red[f, 10:40, 20:20 + t].all() and red[f, 10:40, 60 - t:60].all()
        assert red[f].sum() == 2 * t * 40 + 2 * t * (30 - 2 * t)  # nothing else is red
        assert not red[f, 10 + t:40 - t, 20 + t:60 - t].any()  # the inside keeps the scene
        assert not red[f, 9].any() and not red[f, :, 60].any()  # nothing outside the box


def test_bbox_frames_takes_per_frame_boxes_and_rejects_bad_input():
    frames = scene_frames(1)
    boxes = np.stack([random_box(i) for i in range(N)])
    out = bbox_frames(frames, boxes, NB)  # (N, 4): the last NB rows are used
    found, conf = detect_red_box(out[-NB:])
    np.testing.assert_array_equal(found, boxes[-NB:])
    with pytest.raises(V4SError, match="NaN"):
        bbox_frames(frames, np.full(4, np.nan), NB)
    with pytest.raises(V4SError, match="shape"):
        bbox_frames(frames, np.zeros((3, 4)), NB)
    with pytest.raises(V4SError, match="n_box_frames"):
        bbox_frames(frames, boxes[0], N + 1)
    with pytest.raises(V4SError, match="uint8"):
        bbox_frames(frames.astype(np.float32), boxes[0], NB)
    with pytest.raises(V4SError, match="empty"):
        bbox_frames(frames, [50, 10, 50, 30], NB)


def test_redness_is_one_for_pure_red_and_low_for_the_palette():
    assert redness(np.array([[[RED]]], np.uint8)).item() == 1.0
    assert redness(np.array([[COLOURS]], np.uint8)).max() <= 0.41


@pytest.mark.parametrize("seed", range(6))
def test_detector_finds_crisp_boxes_exactly_and_nothing_elsewhere(seed):
    frames = bbox_frames(scene_frames(seed), random_box(seed), NB)
    boxes, conf = detect_red_box(frames)
    np.testing.assert_array_equal(boxes[-NB:], np.repeat(random_box(seed)[None], NB, 0))
    assert conf[-NB:].min() > 0.6
    assert np.isnan(boxes[:-NB]).all() and conf[:-NB].max() < 0.25


def test_detector_survives_the_lite_codec_and_noise():
    rng = np.random.default_rng(0)
    ious, box_conf, empty_conf, found_empty = [], [], [], 0
    for seed in range(12):
        box = random_box(seed)
        frames = codec_roundtrip(bbox_frames(scene_frames(seed), box, NB))  # 4x time averaging + 4x4 block DCT
        frames = np.clip(frames + rng.normal(0, 8, frames.shape), 0, 255).astype(np.uint8)
        boxes, conf = detect_red_box(frames)
        ious.append(np.nan_to_num(box_iou(boxes[-NB:], box)))
        box_conf.append(conf[-NB:])
        empty_conf.append(conf[:-NB])
        found_empty += int(np.isfinite(boxes[:-NB]).any())
    ious, box_conf, empty_conf = map(np.concatenate, (ious, box_conf, empty_conf))
    assert np.median(ious) > 0.8 and np.mean(ious > 0.5) >= 0.9
    assert np.median(box_conf) > 0.3 and np.median(empty_conf) < 0.1
    assert found_empty <= 1  # at most one of 12 box-free stretches shows a false box


def test_filled_red_things_are_not_boxes():
    frames = scene_frames(3, n=2)
    frames[0, 10:50, 20:70] = RED  # a big filled pure-red patch: red but not an outline
    frames[1, 10:50, 30:36] = (153, 89, 89)  # a thin strip of the palette's reddest allowed colour
    boxes, conf = detect_red_box(frames)
    assert np.isnan(boxes).all() and conf.max() < 0.25


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [1.0, 50 / 150, 0.0])
    assert np.isnan(box_iou(a[0], np.full(4, np.nan)))


def test_box_colour_share_reads_the_named_colour_through_shading():
    """A green thing shaded to 60% inside the box on a wall-toned frame is green, not blue; white, gray and black are
    not read (shaded, they look like the room's walls); the box's own red outline is not counted; no box holds
    nothing."""
    from v4s_lite.bbox import box_colour_share, draw_box
    from v4s_lite.scene import PALETTE, WALL_TONES

    frame = np.zeros((64, 104, 3), np.uint8) + (np.array(WALL_TONES[0]) * 255).astype(np.uint8)
    frame[20:50, 30:70] = (0.6 * np.array(PALETTE["green"]) * 255).astype(np.uint8)
    framed = draw_box(frame, (28, 18, 72, 52), thickness=3)
    assert box_colour_share(framed, (28, 18, 72, 52), "green") > 0.9
    assert box_colour_share(framed, (28, 18, 72, 52), "blue") == 0.0
    assert box_colour_share(framed, (0, 0, 20, 15), "green") == 0.0  # a box on the wall: no green in it
    assert all(np.isnan(box_colour_share(framed, (28, 18, 72, 52), c)) for c in ("white", "gray", "black"))  # NEUTRAL
    assert box_colour_share(framed, None, "green") == 0.0 and box_colour_share(framed, [np.nan] * 4, "green") == 0.0
    with pytest.raises(V4SError, match="unknown colour 'red'"):
        box_colour_share(framed, (28, 18, 72, 52), "red")


def test_box_colour_share_tells_the_target_from_another_object_through_the_codec():
    """The judge's known videos through the lite codec: the true walk's box holds the instruction's colour, a perfect
    walk to an object of another colour does not (what the colour rule of repeated sampling relies on)."""
    import json

    from v4s_lite.bbox import NEUTRAL, box_colour_share
    from v4s_lite.calibration import approach_video, codec_round_trip, ground_truth_video
    from v4s_lite.data import clip_meta
    from v4s_lite.language import named_colour
    from v4s_lite.scene import make_scene
    from v4s_lite.world import make_clip

    codec, seen = LiteCodec(), 0
    for seed in range(12):
        scene = make_scene(seed)
        meta = json.loads(json.dumps(clip_meta(make_clip(scene, "grounding", QUICK, seed=seed), QUICK)))
        colour = named_colour(meta["instruction"])
        others = [o.id for o in scene.objects if o.color != scene.object(meta["target_id"]).color]
        if colour is None or colour in NEUTRAL or not others:
            continue
        shares = []
        for video in (ground_truth_video(meta), approach_video(meta, others[0], seed)):
            frames = codec_round_trip(video, codec)[-QUICK.box_frames:]
            boxes, _ = detect_red_box(frames)
            found = boxes[~np.isnan(boxes).any(1)]
            shares.append(box_colour_share(frames, np.median(found, 0) if len(found) else None, colour))
        assert shares[0] > max(shares[1], 0.05) and shares[1] < 0.1, (seed, meta["instruction"], shares)
        seen += 1
    assert seen >= 4  # enough rooms name a colour for the test to mean something

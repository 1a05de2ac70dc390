"""The judge's calibration suite: fabricated videos of one clip whose verdicts are known (notebook 08,
`tools/calibrate_judge.py`, the tables' ground-truth rows).

    ground_truth_video      the clip's target walk rendered, boxed: what a perfect model would generate
    codec_round_trip        a video through a latent codec and back (the ceiling of a model behind that codec)
    approach_video          a perfect video for another instruction (the walk to another object)
    painted_video           that walk with the boxed object repainted in the instruction's colour (a painted find)
    wrong_box_video         the true walk, the box around another object
    held_scan_frame_video   the scan frame showing the target largest, held: the answer without the walk
    corrupt                 shuffled / frozen / noise copies
    CALIBRATION, calibration_videos   every variant with the IF@0.2 verdict the judge must give it

Split out of evaluate.py (issue 11): these make videos, the judge scores them; evaluate re-exports them.
"""
from __future__ import annotations

import numpy as np
import torch

from .bbox import bbox_frames
from .scene import Scene
from .utils import V4SError


def ground_truth_video(meta: dict, with_box: bool = True, antialias: int = 2) -> np.ndarray:
    """The clip's target trajectory rendered, with the red box on the box frames (grounding): what a perfect
    model would generate. (target.mp4 in the dataset is stored without the box.)"""
    from .config import ClipConfig
    from .data import validate_meta
    from .render import render

    arrays = validate_meta(meta)
    frames = render(Scene.from_dict(meta["scene"]), arrays["target_c2w"], arrays["K"], meta["width"], meta["height"],
                    antialias=antialias).rgb
    if with_box and meta["task"] == "grounding":
        n_box = ClipConfig(**meta["clip_config"]).box_frames
        frames = bbox_frames(frames, arrays["target_boxes"][:, meta["target_id"] - 1], n_box)
    return frames


def _approach(meta: dict, object_id: int, seed: int):
    """The perfect walk to `object_id`, rendered: (scene, clip config, render output)."""
    from .config import ClipConfig
    from .render import render
    from .trajectories import approach_trajectory

    scene, cfg = Scene.from_dict(meta["scene"]), ClipConfig(**meta["clip_config"])
    c2w = approach_trajectory(scene, object_id, cfg.target_frames, cfg.box_frames, seed)
    return scene, cfg, render(scene, c2w, np.asarray(meta["K"]), meta["width"], meta["height"], antialias=2)


def approach_video(meta: dict, object_id: int, seed: int = 0) -> np.ndarray:
    """A perfect video for another instruction: the approach to `object_id`, boxed (for IF near 0 on this clip)."""
    from .render import boxes_from_instance

    scene, cfg, out = _approach(meta, object_id, seed)
    boxes, _ = boxes_from_instance(out.instance, len(scene.objects))
    return bbox_frames(out.rgb, boxes[:, object_id - 1], cfg.box_frames)


def painted_video(meta: dict, object_id: int, colour: str, seed: int = 0) -> np.ndarray:
    """The walk to `object_id` (approach_video) with that object repainted in `colour` on the box frames, keeping its
    shading: what a model that draws the instruction's colour wherever it stops would make. A check that reads only
    the pixels (bbox.box_colour_share) takes it for a find; the room, re-rendered under the box, says otherwise."""
    from .render import boxes_from_instance
    from .scene import PALETTE

    if colour not in PALETTE:
        raise V4SError(f"unknown colour {colour!r}; choose from {tuple(PALETTE)}")
    scene, cfg, out = _approach(meta, object_id, seed)
    albedo, new = np.asarray(PALETTE[scene.object(object_id).color]), np.asarray(PALETTE[colour])
    rgb = out.rgb.astype(np.float64) / 255.0
    shade = np.clip(rgb @ albedo / (albedo @ albedo), 0.0, 1.0)  # each pixel's shade of the object's own albedo
    paint = (out.instance == object_id) & (np.arange(len(rgb)) >= len(rgb) - cfg.box_frames)[:, None, None]
    rgb[paint] = shade[paint][:, None] * new
    boxes, _ = boxes_from_instance(out.instance, len(scene.objects))
    return bbox_frames((rgb * 255.0 + 0.5).astype(np.uint8), boxes[:, object_id - 1], cfg.box_frames)


def corrupt(frames, kind: str, seed: int = 0, keep_first: bool = True) -> np.ndarray:
    """Corrupted copies of a video: 'shuffle' (frames in random order), 'freeze' (the first frame throughout),
    'noise' (uniform noise). keep_first keeps the clean first frame the model is given."""
    frames = np.asarray(frames)
    rng = np.random.default_rng(seed)
    s = 1 if keep_first else 0
    out = frames.copy()
    if kind == "shuffle":
        out[s:] = frames[s:][rng.permutation(len(frames) - s)]
    elif kind == "freeze":
        out[:] = frames[0]
    elif kind == "noise":
        out[s:] = rng.integers(0, 256, out[s:].shape, dtype=np.uint8)
    else:
        raise V4SError(f"unknown corruption {kind!r}; choose 'shuffle', 'freeze' or 'noise'")
    return out


def wrong_box_video(meta: dict, frames=None) -> tuple[np.ndarray, int]:
    """The ground-truth walk with the box drawn around another object (the largest other one in the final view)."""
    from .config import ClipConfig
    from .data import validate_meta

    arrays = validate_meta(meta)
    n_box = ClipConfig(**meta["clip_config"]).box_frames
    boxes = arrays["target_boxes"][-1]  # (n_objects, 4) at the final pose
    area = np.nan_to_num((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    area[meta["target_id"] - 1] = -1
    other = int(np.argmax(area)) + 1
    if area[other - 1] <= 0:
        raise V4SError("no other object is visible in the final view to draw a wrong box on")
    base = ground_truth_video(meta, with_box=False) if frames is None else np.asarray(frames)
    return bbox_frames(base, arrays["target_boxes"][:, other - 1], n_box), other


def codec_round_trip(frames, codec) -> np.ndarray:
    """A video through a latent codec and back: what the course's lite model could at best output."""
    from .codec import frames_to_video, video_to_frames

    with torch.no_grad():
        return video_to_frames(codec.decode(codec.encode(frames_to_video(frames))))[0]


def held_scan_frame_video(meta: dict) -> np.ndarray:
    """The scan frame that shows the target largest, boxed, held for the whole video: the right answer without
    the walk (a model that copies the context)."""
    from .config import ClipConfig
    from .data import validate_meta
    from .render import boxes_from_instance, render

    arrays = validate_meta(meta)
    scene, n_box = Scene.from_dict(meta["scene"]), ClipConfig(**meta["clip_config"]).box_frames
    out = render(scene, arrays["context_c2w"], arrays["K"], meta["width"], meta["height"], antialias=2)
    i = int(np.argmax((out.instance == meta["target_id"]).sum((1, 2))))
    boxes, _ = boxes_from_instance(out.instance[i:i + 1], len(scene.objects))
    n_t = len(arrays["target_frame_indices"])
    held = np.repeat(out.rgb[i:i + 1], n_t, 0)
    return bbox_frames(held, boxes[0, meta["target_id"] - 1], n_box)


# The calibration suite: each variant of a clip's ground truth with the verdict the headline (IF@0.2) must give.
CALIBRATION = {
    "ground truth": True, "ground truth through the codec": True, "walk to another object": False,
    "wrong box": False, "frozen first frame": False, "still final view": False, "held scan frame": False,
    "shuffled frames": False, "noise": False, "box around the border": False,
}


def calibration_videos(meta: dict, codec=None, seed: int = 0) -> dict:
    """{variant: frames} for a grounding clip (CALIBRATION names the verdict each must get). `codec` (default the
    lite codec) makes the codec row, the ceiling a lite model can reach. A clip whose final view shows no other
    object has no "wrong box" video."""
    from .codec import LiteCodec
    from .config import ClipConfig

    if meta["task"] != "grounding":
        raise V4SError("calibration_videos needs a grounding clip (the verdicts are about finding a target)")
    n_box = ClipConfig(**meta["clip_config"]).box_frames
    gt = ground_truth_video(meta)
    plain = ground_truth_video(meta, with_box=False)
    h, w = gt.shape[1:3]
    others = [o.id for o in Scene.from_dict(meta["scene"]).objects if o.id != meta["target_id"]]
    rng = np.random.default_rng(seed)
    v = {"ground truth": gt, "ground truth through the codec": codec_round_trip(gt, codec or LiteCodec()),
         "walk to another object": approach_video(meta, int(rng.choice(others)), seed),
         "wrong box": None,
         "frozen first frame": corrupt(gt, "freeze"),
         "still final view": np.repeat(gt[-1:], len(gt), 0),
         "held scan frame": held_scan_frame_video(meta),
         "shuffled frames": corrupt(gt, "shuffle", seed),
         "noise": corrupt(gt, "noise", seed),
         "box around the border": bbox_frames(plain, np.array([0.0, 0.0, w, h]), n_box)}
    try:
        v["wrong box"] = wrong_box_video(meta, plain)[0]
    except V4SError:  # the final view shows no other object to box: this clip has no wrong-box video
        del v["wrong box"]
    return v

"""The synthetic spatial world, put together (notebook 01): one rendered, annotated example.

scene.py builds the room, camera.py the pinhole cameras, trajectories.py the walks, language.py the words,
render.py the pixels; `make_clip` renders the context scan and the target walk of one grounding or navigation
task, with every object's box per frame.

    scene = make_scene(seed=0)
    clip = make_clip(scene, "grounding", QUICK, seed=0)   # scan + approach, rendered and annotated
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import intrinsics
from .config import get_clip_config
from .language import describe_commands, make_instruction
from .render import boxes_from_instance, framing_score, render
from .scene import Scene
from .trajectories import approach_trajectory, navigation_trajectory, random_commands, scan_trajectory
from .utils import V4SError

# ---------------------------------------------------------------------------------------------------------
# Clips


@dataclass
class Clip:
    scene: Scene
    task: str  # "grounding" | "navigation"
    instruction: str
    target_id: int | None
    K: np.ndarray
    width: int
    height: int
    scan_c2w: np.ndarray  # (Ns, 4, 4)
    scan_rgb: np.ndarray  # (Ns, H, W, 3) uint8
    scan_boxes: np.ndarray  # (Ns, n_objects, 4) NaN where unseen
    scan_visible: np.ndarray  # (Ns, n_objects)
    target_c2w: np.ndarray  # (Nt, 4, 4)
    target_rgb: np.ndarray
    target_boxes: np.ndarray
    target_visible: np.ndarray
    commands: list[str] | None = None
    seed: int = 0
    start_scan_frame: int | None = None  # start="scan": the scan frame the walk starts from (its first frame)
    scan_rule: str = "random"  # scan="canonical": every scan starts at the same place on its ring
    end_scan_frame: int | None = None  # end="scan": the scan frame the walk ends at (the view it holds)


START_RULES = ("anywhere", "scan")
END_RULES = ("object", "scan")


def best_scan_view(scan_boxes, scan_visible, target_id: int, width: int, height: int) -> int | None:
    """The scan frame that frames object `target_id` best as a walk's final view (render.framing_score: whole in
    the image, at least 1% of it, large and central; at most 10% of it hidden), or None when no frame does."""
    b, v = scan_boxes[:, target_id - 1], scan_visible[:, target_id - 1]
    inside = (b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 2] < width) & (b[:, 3] < height)  # NaN compares False
    score = framing_score(b, inside & (v >= 0.9), width, height)
    return int(np.argmax(score)) if np.isfinite(score).any() else None


def make_clip(scene: Scene, task: str, clip_cfg, seed: int, target_id: int | None = None, antialias: int = 2,
              device="cpu", start: str = "anywhere", scan: str = "random", end: str = "object") -> Clip:
    """Render one training/evaluation example: the context scan and the target trajectory, annotated.

    grounding: the target walk is approach_trajectory (last clip_cfg.box_frames still) and the instruction
    names target_id (random when None). navigation: random free commands; the instruction spells them out.
    start (grounding): "anywhere" (off the scan ring when possible, facing anywhere: the walk's first view is new
    to the model) or "scan" (one of the scan's views, drawn from the seed: the first frame is a frame of the scan
    video, so finding it in the context is a matter of matching; closer to a real recording, where the walk to
    the target continues the video the context was sampled from).
    scan: "random" (default) or "canonical" (trajectories.scan_trajectory: every scan starts at the same place on
    its ring and turns the same way, so a context frame's index says where its camera stands).
    end (grounding): "object" (default: a place at a comfortable distance from the target, drawn from the seed, that
    the scan never stood at: the final view must be synthesised from the room's layout) or "scan" (the scan's view
    that frames the target best, `best_scan_view`: the final view is one the context video passed through, so the
    model can find it there rather than synthesise it; as in a real recording, where the target segment is cut from
    the video the context comes from. Where no scan view frames the target, the default end, and the clip records
    no end_scan_frame).
    """
    if start not in START_RULES:
        raise V4SError(f"start must be one of {START_RULES}, got {start!r}")
    if end not in END_RULES:
        raise V4SError(f"end must be one of {END_RULES}, got {end!r}")
    if (start != "anywhere" or end != "object") and task != "grounding":
        raise V4SError(f"start={start!r} / end={end!r} are for grounding walks; navigation draws its own walk with "
                       "its commands")
    cfg = get_clip_config(clip_cfg)
    rng = np.random.default_rng([seed, 4])
    scan_c2w = scan_trajectory(scene, cfg.scan_frames, seed, rule=scan)
    K = intrinsics(cfg.width, cfg.height)
    n = len(scene.objects)
    # device="cuda" renders the frames on the GPU: byte-identical to the CPU (tests/test_render.py), faster
    scan_out = render(scene, scan_c2w, K, cfg.width, cfg.height, antialias=antialias, device=device)
    sb, sv = boxes_from_instance(scan_out.instance, n, scan_out.coverage)
    start_scan_frame = end_scan_frame = None
    if task == "grounding":
        if not scene.objects:
            raise V4SError("grounding needs a scene with objects")
        if target_id is None:
            target_id = int(scene.objects[rng.integers(len(scene.objects))].id)
        scene.object(target_id)
        instruction = make_instruction(scene, target_id, rng)
        if start == "scan":  # its own stream, so the default clips stay as they were
            start_scan_frame = int(np.random.default_rng([seed, 5]).integers(len(scan_c2w)))
        if end == "scan":
            end_scan_frame = best_scan_view(sb, sv, target_id, cfg.width, cfg.height)
        target_c2w = approach_trajectory(scene, target_id, cfg.target_frames, cfg.box_frames, seed,
                                         start=None if start_scan_frame is None else scan_c2w[start_scan_frame],
                                         end=None if end_scan_frame is None else scan_c2w[end_scan_frame])
        commands = None
    elif task == "navigation":
        if target_id is not None:
            raise V4SError("navigation clips have no target object; leave target_id=None")
        start, commands = random_commands(scene, seed)
        target_c2w = navigation_trajectory(start, commands, cfg.target_frames)
        instruction = describe_commands(commands)
    else:
        raise V4SError(f"task must be 'grounding' or 'navigation', got {task!r}")
    tgt = render(scene, target_c2w, K, cfg.width, cfg.height, antialias=antialias, device=device)
    tb, tv = boxes_from_instance(tgt.instance, n, tgt.coverage)
    return Clip(scene, task, instruction, target_id, K, cfg.width, cfg.height, scan_c2w, scan_out.rgb, sb, sv,
                target_c2w, tgt.rgb, tb, tv, commands, seed, start_scan_frame, scan, end_scan_frame)

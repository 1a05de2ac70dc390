"""Bring your own scans: a real recording (RGB frames + camera poses + intrinsics + optional 3D boxes) -> clip folders.

    v4s import-scan path/to/scannetpp/<scene_id>           --out data/real --clip-config paper
    v4s import-scan path/to/ARKitScenes/3dod/<video_id>    --out data/real --stride 2

Two layouts are read, ScanNet++ iPhone and ARKitScenes 3DOD: `scan_layouts.py` says which files each holds, and
docs/DATA.md ("Bring your own scans") which fields come from which documented source and what is assumed.

What a clip folder gets (the same layout `v4s make-data` writes, so ClipDataset and training read it unchanged):

- context.mp4: the whole recording, subsampled (`stride`) to about the clip config's fps, resized (cover + centre
  crop) to the clip size. `context.frame_indices` are frame numbers *of the subsampled video* (0, 1, 2, ...): the
  RoPE positions are `index // 4` of 4 consecutive stored frames, so chunks are always valid (`rope.context_positions`);
  the original frame numbers are kept in `source.frame_numbers` for reference only.
- target.mp4: a real scan has no separate "walk to the target" video, so the target is a piece of the same
  recording. Grounding (when 3D boxes exist): the segment that ends where an object with a unique label is best
  framed (large, whole, near the centre), then that final frame held `box_frames` times (the course's convention:
  the camera holds still under the red box); instruction "Find the <label>."; per-frame boxes of every object are
  the projected 3D boxes (no occlusion test: a real scan has no renderer). Navigation (no boxes): consecutive
  windows of the recording, the instruction spelling the window's net motion as commands.
- poses in the course's convention: world z up (the recording's up axis is rotated onto +z), OpenCV camera axes
  (x right, y down, z forward), camera-to-world; K rescaled for the resize and the crop.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np

from .bbox import box_iou, detect_red_box
from .camera import project, yaw_pitch
from .config import TEMPORAL_STRIDE, get_clip_config
from .data import META_VERSION, parse_size, write_clip
from .video import read_video
from .language import describe_commands
from .render import framing_score  # how well a view frames an object (also make-data --end scan)
from .rope import DEFAULT_GAP, context_positions
from .sampling import n_chunk_slots, sample_context_frames
from .scan_layouts import (LAYOUTS, READERS, Scan, detect_layout, obb_corners, read_arkitscenes,  # noqa: F401
                           read_scannetpp, rotation_from_axis_angle)
from .utils import V4SError

CAMERAS = ("opencv", "opengl")
UPS = ("auto", "x", "y", "z", "-x", "-y", "-z")
ROPE_MAX_SEQ_LEN = 1024  # the presets' transformer config (model.transformer_config: rope_max_seq_len)
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips camera y (up -> down) and z (back -> forward)


# ------------------------------------------------------------------------------------------- conventions
def world_up(c2w_cv, up: str = "auto") -> np.ndarray:
    """The scan's up axis (3,) as a world axis. "auto": the axis nearest the cameras' mean image-up direction
    (people hold a camera upright, so -y of an OpenCV camera points roughly up)."""
    if up != "auto":
        if up not in UPS:
            raise V4SError(f"--up {up!r}: choose one of {UPS}")
        axis = np.zeros(3)
        axis["xyz".index(up[-1])] = -1.0 if up.startswith("-") else 1.0
        return axis
    mean_up = -np.asarray(c2w_cv)[:, :3, 1].mean(0)
    i = int(np.argmax(np.abs(mean_up)))
    axis = np.zeros(3)
    axis[i] = np.sign(mean_up[i]) or 1.0
    return axis


def rotation_to_z(up) -> np.ndarray:
    """A proper rotation (3, 3) taking the unit vector `up` to +z (the course's up), the shortest turn."""
    up = np.asarray(up, float) / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    c = float(up @ z)
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])  # half a turn about x
    axis = np.cross(up, z)
    return rotation_from_axis_angle(axis / np.linalg.norm(axis) * math.acos(c))


def to_course_poses(c2w, camera: str = "opencv", up: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Poses (N, 4, 4) in the scan's conventions -> (course c2w (N, 4, 4), world rotation A (4, 4)).

    The course: world z up, camera axes OpenCV (x right, y down, z forward). OpenGL camera axes (x right, y up,
    z back: ARKit's raw poses, nerfstudio) are turned into OpenCV by flipping y and z; the world is rotated so the
    scan's `up` becomes +z. A V4SError when the cameras come out upside down: the convention was wrong.
    """
    if camera not in CAMERAS:
        raise V4SError(f"--camera {camera!r}: choose one of {CAMERAS}")
    c2w = np.asarray(c2w, float)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise V4SError(f"poses must be (N, 4, 4) camera-to-world matrices, got shape {c2w.shape}")
    cv = c2w @ OPENGL_TO_OPENCV if camera == "opengl" else c2w
    A = np.eye(4)
    A[:3, :3] = rotation_to_z(world_up(cv, up))
    out = A @ cv
    if up != "auto" and np.mean(out[:, 2, 1]) > 0.5:  # image "down" points up in the world
        other = "opengl" if camera == "opencv" else "opencv"
        raise V4SError(f"with --camera {camera} --up {up} the cameras come out upside down (their image y axis "
                       f"points up the world); the poses are probably in the {other} convention: pass --camera "
                       f"{other}, or --up auto")
    return out, A


def fit_intrinsics(K, src_size, size) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """K (3, 3) in the OpenCV pixel convention at `src_size` (w, h) -> K in the course's convention (pixel i
    covers [i, i+1)) after scaling to cover `size` (w, h) and cropping the centre; also (sx, sy) and the
    crop's (left, top) in the scaled image, for resizing the frames the same way."""
    (W, H), (w, h) = src_size, size
    s = max(w / W, h / H)
    sw, sh = max(w, round(W * s)), max(h, round(H * s))
    left, top = (sw - w) // 2, (sh - h) // 2
    out = np.array(K, float).copy()
    out[:2, 2] += 0.5  # OpenCV puts pixel centres at integers, the course at i + 0.5
    out[0] *= sw / W
    out[1] *= sh / H
    out[0, 2] -= left
    out[1, 2] -= top
    return out, (sw, sh), (left, top)


def load_frame(path, scaled: tuple[int, int], crop: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """One image -> uint8 (h, w, 3): resized to `scaled` (antialiased), then the `size` window at `crop`."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize(scaled, Image.BILINEAR)
        left, top = crop
        return np.asarray(im.crop((left, top, left + size[0], top + size[1])))


# ---------------------------------------------------------------------------------------- what fits the model
def rope_positions_needed(n_frames: int, clip_cfg, gap: int = DEFAULT_GAP) -> int:
    """The RoPE table length a scan of `n_frames` (subsampled) needs: its last chunk slot sits at position
    `n_chunk_slots(n)`, and the target's `1 + target_chunks` latents continue `gap` after it (rope.py)."""
    return n_chunk_slots(n_frames) + gap + clip_cfg.target_latents


def check_scan_length(n_frames: int, clip_cfg, stride: int, rope_max_seq_len: int = ROPE_MAX_SEQ_LEN) -> None:
    """V4SError when the subsampled scan is too short for the clip config or too long for the RoPE table."""
    slots, moving = n_chunk_slots(n_frames), clip_cfg.target_frames - clip_cfg.box_frames
    need = max(TEMPORAL_STRIDE * (clip_cfg.context_chunks + 2), moving)
    if slots <= clip_cfg.context_chunks or n_frames < moving:
        raise V4SError(
            f"the scan has {n_frames} frames after subsampling (--stride {stride}), but the clip config needs at least "
            f"{need}: {clip_cfg.context_chunks} context chunks of 4 with gaps between them (non-contiguous sampling) and "
            f"a {moving}-frame target segment. Use a smaller --stride (or --fps higher), a longer recording, or a "
            "smaller --clip-config (quick / lite).")
    needed = rope_positions_needed(n_frames, clip_cfg)
    if needed > rope_max_seq_len:
        raise V4SError(
            f"the scan has {n_frames} frames after subsampling (--stride {stride}): its context chunks sit at RoPE "
            f"positions up to {n_chunk_slots(n_frames)} (frame // 4) and the target continues after them, {needed} "
            f"positions in all, but the transformer's table holds {rope_max_seq_len} (rope_max_seq_len). Either "
            f"subsample more (--stride {math.ceil(stride * needed / rope_max_seq_len)}), keep the first frames only "
            f"(--max-frames {TEMPORAL_STRIDE * (rope_max_seq_len - clip_cfg.target_latents - DEFAULT_GAP)}), or raise "
            f"the table to at least {needed}: in the training config `model_overrides: {{rope_max_seq_len: {needed}}}` "
            f"(preset models), in Python `V4SModel(transformer, rope_max_seq_len={needed})` or "
            f"`rope.ContextRoPE.from_rope(rope, max_seq_len={needed})`; then pass --rope-max-seq-len {needed} here.")


# ------------------------------------------------------------------------------------------------- boxes
def project_boxes(corners, c2w, K, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """3D boxes (n_obj, 8, 3) seen from poses (N, 4, 4) -> pixel boxes (N, n_obj, 4) clipped to the image, NaN
    where the box is behind the camera or off screen, and `whole` (N, n_obj) bool: all 8 corners in the image.
    No occlusion test (a real scan has no renderer): a box behind a wall still counts as seen."""
    n, m = len(c2w), len(corners)
    boxes, whole = np.full((n, m, 4), np.nan), np.zeros((n, m), bool)
    for i in range(n):
        for j in range(m):
            uv, z = project(corners[j], c2w[i], K)
            if (z <= 1e-6).any():
                continue
            x0, y0 = np.clip(uv.min(0), 0, [width, height])
            x1, y1 = np.clip(uv.max(0), 0, [width, height])
            if x1 > x0 and y1 > y0:
                boxes[i, j] = (x0, y0, x1, y1)
                whole[i, j] = bool((uv.min(0) >= 0).all() and (uv[:, 0].max() <= width) and (uv[:, 1].max() <= height))
    return boxes, whole


# ------------------------------------------------------------------------------------------ the clip folders
def grounding_targets(labels, score, moving: int) -> list[tuple[int, int]]:
    """(object index, final frame) for every object with a unique label that some frame frames well, with
    `moving - 1` frames before it to walk in. Labels seen twice are skipped: "find the chair" has no one answer."""
    out = []
    for j, label in enumerate(labels):
        if labels.count(label) > 1:
            continue
        s = score[moving - 1:, j]
        if len(s) and np.isfinite(s).any():
            out.append((j, int(np.argmax(s)) + moving - 1))
    return out


def motion_commands(c2w_start, c2w_end) -> list[str]:
    """The net motion between two course poses as commands in the start's heading frame ("move forward 1.2 m",
    "move left 0.3 m", "turn right 40 degrees"): executed in order they reach the end pose (position, heading)."""
    yaw0, yaw1 = yaw_pitch(c2w_start)[0], yaw_pitch(c2w_end)[0]
    d = np.asarray(c2w_end)[:2, 3] - np.asarray(c2w_start)[:2, 3]
    fwd = float(d @ [math.cos(yaw0), math.sin(yaw0)])
    left = float(d @ [-math.sin(yaw0), math.cos(yaw0)])
    turn = math.degrees((yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi)
    cmds = []
    if abs(fwd) >= 0.05:
        cmds.append(f"move {'forward' if fwd > 0 else 'backward'} {abs(fwd):.2f} m")
    if abs(left) >= 0.05:
        cmds.append(f"move {'left' if left > 0 else 'right'} {abs(left):.2f} m")
    if abs(turn) >= 1:
        cmds.append(f"turn {'left' if turn > 0 else 'right'} {abs(turn):.0f} degrees")
    return cmds


def _meta(scan, cfg, K, c2w, frames_used, stride, A, task, instruction, target_id, target_scan, boxes, commands):
    """meta.json of one imported clip (data.validate_meta's schema + `source` and `target.scan_frames`)."""
    n_t = len(target_scan)
    meta = {
        "version": META_VERSION, "task": task, "instruction": instruction, "target_id": target_id,
        "K": K, "width": cfg.width, "height": cfg.height, "fps": cfg.fps,
        "context": {"frame_indices": list(range(len(c2w))), "c2w": np.round(c2w, 6)},
        "target": {"frame_indices": list(range(n_t)), "c2w": np.round(c2w[target_scan], 6),
                   # which context frame each target frame is (the held box frames repeat the last one)
                   "scan_frames": [int(i) for i in target_scan]},
        "commands": commands, "scene": None, "clip_config": cfg.to_dict(),
        "source": {"layout": scan.layout, "scan": scan.name, "stride": stride, "camera": scan.camera,
                   "world_to_course": np.round(A, 9), "frame_numbers": [int(x) for x in frames_used],
                   "labels": list(scan.labels)},
    }
    if boxes is not None:
        vis = (~np.isnan(boxes[..., 0])).astype(float)
        meta["context"].update({"boxes": np.round(boxes, 3), "visible": vis})
        meta["target"].update({"boxes": np.round(boxes[target_scan], 3), "visible": vis[target_scan]})
    else:  # no annotated objects: one placeholder object never seen, so the schema's arrays have their shape
        meta["target"].update({"boxes": np.full((n_t, 1, 4), np.nan), "visible": np.zeros((n_t, 1))})
    return meta


# long (~75 lines): the converter's steps (read, subsample, resize, chunk, check RoPE, write) in order,
# each a few lines that call the helpers above
def import_scan(src, out, layout: str = "auto", clip_config="paper", size=None, stride: int | None = None,
                fps: float | None = None, camera: str | None = None, up: str | None = None, task: str = "auto",
                max_clips: int | None = None, max_frames: int | None = None,
                rope_max_seq_len: int = ROPE_MAX_SEQ_LEN) -> list[Path]:
    """Convert one recording into clip folders `out/<scan>_<label>` (grounding) or `out/<scan>_nav<k>`.

    stride: keep every stride-th frame (default: the stride nearest `fps`, itself default the clip config's fps);
    size: (w, h) overriding the clip config's; camera / up: override the layout's conventions (see to_course_poses);
    task: "auto" = grounding when the scan has 3D boxes, else navigation. Returns the folders written.
    """
    layout = detect_layout(src) if layout == "auto" else layout
    if layout not in READERS:
        raise V4SError(f"--layout {layout!r}: choose one of {LAYOUTS} (or auto)")
    scan = READERS[layout](src)
    scan.camera, scan.up = camera or scan.camera, up or scan.up
    cfg = get_clip_config(clip_config)
    if size is not None:
        cfg = cfg.with_(width=int(size[0]), height=int(size[1]))
    if stride is None:
        stride = max(1, round(scan.fps / (fps or cfg.fps)))
    if stride < 1:
        raise V4SError(f"--stride {stride} must be >= 1")
    keep = np.arange(0, len(scan.images), stride)[:max_frames]
    check_scan_length(len(keep), cfg, stride, rope_max_seq_len)
    c2w, A = to_course_poses(scan.c2w[keep], scan.camera, scan.up)
    corners = scan.corners @ A[:3, :3].T if len(scan.corners) else scan.corners

    from PIL import Image

    with Image.open(scan.images[0]) as im:
        src_size = im.size
    K, scaled, crop = fit_intrinsics(scan.K[keep[0]], src_size, (cfg.width, cfg.height))
    if not np.allclose(scan.K[keep], scan.K[keep[0]], rtol=1e-3, atol=1e-3):
        # one K per clip (meta.json's schema); ARKit refines focal lengths by fractions of a pixel per frame
        K = np.mean([fit_intrinsics(k, src_size, (cfg.width, cfg.height))[0] for k in scan.K[keep]], axis=0)
    if not (0 < K[0, 2] < cfg.width and 0 < K[1, 2] < cfg.height):
        raise V4SError(f"the principal point lands at ({K[0, 2]:.1f}, {K[1, 2]:.1f}), outside the {cfg.width}x"
                       f"{cfg.height} image: the intrinsics are for another image size than the {src_size[0]}x"
                       f"{src_size[1]} frames. Use the full-resolution frames the intrinsics describe.")
    frames = np.stack([load_frame(scan.images[i], scaled, crop, (cfg.width, cfg.height)) for i in keep])

    has_boxes = len(scan.labels) > 0
    task = ("grounding" if has_boxes else "navigation") if task == "auto" else task
    if task == "grounding" and not has_boxes:
        raise V4SError(f"{src}: grounding clips need the scan's 3D boxes (ScanNet++ scans/segments_anno.json, "
                       "ARKitScenes <id>_3dod_annotation.json); none were found. Use --task navigation.")
    boxes, whole = project_boxes(corners, c2w, K, cfg.width, cfg.height) if has_boxes else (None, None)
    moving = cfg.target_frames - cfg.box_frames if task == "grounding" else cfg.target_frames
    clips = []  # (folder name, target's context frames, instruction, target_id, commands)
    if task == "grounding":
        for j, end in grounding_targets(scan.labels, framing_score(boxes, whole, cfg.width, cfg.height), moving):
            seq = list(range(end - moving + 1, end + 1)) + [end] * cfg.box_frames
            slug = re.sub(r"[^a-z0-9]+", "-", scan.labels[j].lower()).strip("-")
            clips.append((f"{scan.name}_{slug}", seq, f"Find the {scan.labels[j]}.", j + 1, []))
    elif task == "navigation":
        for k, s in enumerate(range(0, len(keep) - moving + 1, moving)):
            cmds = motion_commands(c2w[s], c2w[s + moving - 1])
            if cmds:
                clips.append((f"{scan.name}_nav{k:03d}", list(range(s, s + moving)), describe_commands(cmds), None, cmds))
    else:
        raise V4SError(f"--task {task!r}: choose grounding, navigation or auto")
    if not clips:
        raise V4SError(f"{src}: no {task} clip could be cut: " + (
            "no object with a unique label is ever seen whole and at least 1% of the frame" if task == "grounding"
            else "the camera does not move between windows") + "; check the poses and boxes, or try the other --task")
    # self-check before writing: chunks drawn as ClipDataset draws them are valid RoPE input
    context_positions(sample_context_frames(len(frames), cfg.context_chunks, 0))
    folders = []
    for name, seq, instruction, target_id, cmds in clips[:max_clips]:
        meta = _meta(scan, cfg, K, c2w, scan.numbers[keep], stride, A, task, instruction, target_id,
                     np.array(seq), boxes, cmds)
        folders.append(write_clip(Path(out) / name, frames, frames[seq], meta))
    return folders


# ------------------------------------------------------------------------------------- scoring real clips
# What `v4s eval` cannot measure on a real clip: every pose-based metric needs the room re-rendered
# (render-and-compare), and a real scan has no scene recipe to render.
NOT_MEASURED = {
    "walk / IF / IF@0.2 / IF@0.1": "need the camera pose of every generated frame (render-and-compare)",
    "SD": "needs the depth of the room inside the box at the estimated final pose",
    "PSNR / SSIM": "compare frames with the room re-rendered at their estimated poses",
    "pose_err_m / DD": "need estimated poses",
}


def score_real_clip(meta: dict, frames, folder=None) -> dict:
    """What can be scored of a video (uint8 (Nt, H, W, 3)) for an imported clip, without re-rendering the room:

    - `first_psnr`: frame 0 against the given first frame (context.mp4's frame `target.scan_frames[0]`, when
      `folder` holds the context.mp4);
    - `frame_motion`: mean absolute change between consecutive frames before the box frames (in [0, 1]; a frozen
      video scores ~0), a stand-in for DD;
    - grounding: `box_confidence` of the red box in the box frames and `box_IoU_recorded`: its IoU with the target's
      projected 3D box in the recording's final view (meaningful when the walk ends where the recording did).
    The metrics in NOT_MEASURED are NaN; `not_measured` says why.
    """
    arrays_t = meta["target"]
    frames = np.asarray(frames)
    n_t = len(frames)
    grounding = meta["task"] == "grounding"
    n_box = meta["clip_config"]["box_frames"] if grounding else 0
    nan = float("nan")
    out = {k: nan for k in ("walk", "IF", "IF@0.2", "IF@0.1", "SD", "PSNR", "SSIM", "DD", "box_IoU", "first_psnr")}
    moving = frames[: n_t - n_box].astype(np.float32) / 255
    out["frame_motion"] = float(np.abs(np.diff(moving, axis=0)).mean()) if len(moving) > 1 else 0.0
    context = Path(folder) / "context.mp4" if folder is not None else None
    if context is not None and context.is_file() and "scan_frames" in arrays_t:
        given = read_video(context)[arrays_t["scan_frames"][0]].astype(np.float64) / 255
        mse = float(((frames[0].astype(np.float64) / 255 - given) ** 2).mean())
        out["first_psnr"] = min(100.0, 10 * math.log10(1 / mse)) if mse > 0 else 100.0
    if grounding:
        found, conf = detect_red_box(frames[n_t - n_box:])
        seen = found[~np.isnan(found).any(1)]
        truth = np.array([np.nan if v is None else v for v in arrays_t["boxes"][-1][meta["target_id"] - 1]], float)
        out["box_confidence"] = float(np.median(conf))
        out["box_IoU_recorded"] = float(np.nan_to_num(box_iou(np.median(seen, 0), truth))) if len(seen) else 0.0
    out["not_measured"] = dict(NOT_MEASURED)
    return out


def add_cli(sub) -> None:
    p = sub.add_parser("import-scan", help="convert a real scan (ScanNet++ / ARKitScenes) into clip folders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a ScanNet++ scene folder (with iphone/) or an ARKitScenes 3dod video folder")
    p.add_argument("--out", required=True, help="dataset folder; one clip folder per target is written inside")
    p.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    p.add_argument("--clip-config", default="paper", help="a preset of v4s_lite.config.PRESETS (default paper, 416x256)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT overriding the clip config's size, e.g. 104x64")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--stride", type=int, default=None, help="keep every STRIDE-th frame of the recording")
    rate.add_argument("--fps", type=float, default=None, help="subsample to about this frame rate (default: the clip "
                                                              "config's fps)")
    p.add_argument("--camera", default=None, choices=CAMERAS, help="camera axes of the poses (default: the layout's, opencv)")
    p.add_argument("--up", default=None, choices=UPS, help="the world's up axis (default: z for ScanNet++, auto otherwise)")
    p.add_argument("--task", default="auto", choices=("auto", "grounding", "navigation"),
                   help="auto: grounding when the scan has 3D boxes, else navigation")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips")
    p.add_argument("--max-frames", type=int, default=None, help="keep only the first frames (after subsampling)")
    p.add_argument("--rope-max-seq-len", type=int, default=ROPE_MAX_SEQ_LEN,
                   help=f"the RoPE table of the model you will train (default {ROPE_MAX_SEQ_LEN}, the presets')")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    size = parse_size(args.size) if args.size else None
    try:
        get_clip_config(args.clip_config)
    except ValueError as e:
        raise V4SError(str(e)) from None
    folders = import_scan(args.src, args.out, args.layout, args.clip_config, size, args.stride, args.fps, args.camera,
                          args.up, args.task, args.max_clips, args.max_frames, args.rope_max_seq_len)
    print(f"wrote {len(folders)} clips to {args.out}: " + ", ".join(f.name for f in folders))
    return 0

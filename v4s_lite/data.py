"""Clips on disk: one folder a clip, two mp4 videos (written and read by `video.py`) and a meta.json.

    clip_folder/
        context.mp4   the WHOLE context scan (clip_cfg.scan_frames frames); chunks are sampled at load time
        target.mp4    the target video: clean first frame + the approach / navigation (no box drawn on disk)
        meta.json     frame indices, poses, boxes of every object, instruction, the scene recipe

The scan is stored whole so the non-contiguous / contiguous ablation trains on the same files: the
sampling happens in `ClipDataset.__getitem__`, seeded per item and epoch. The scene recipe and the poses
let anyone rebuild the scene and re-render every frame exactly (`load_clip(f).scene()` + `render`).
docs/DATA.md describes the layout for people who bring their own scans.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ClipConfig, get_clip_config
from .sampling import MODES, context_positions, sample_context_frames
from .utils import V4SError, get_device
from .video import DataError, read_video, write_video  # noqa: F401 (DataError: data's errors are video's)

META_VERSION = 1
TASKS = ("grounding", "navigation")
FILES = ("context.mp4", "target.mp4", "meta.json")
POSE_DECIMALS, BOX_DECIMALS = 6, 3


# ----------------------------------------------------------------------------------------- meta.json

def _jsonable(x, decimals: int | None = None):
    """numpy -> nested lists; floats rounded; NaN -> null (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _jsonable(v, decimals) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, decimals) for v in x]
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return _jsonable(np.asarray(x).tolist(), decimals)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return None
        return round(x, decimals) + 0.0 if decimals is not None else x  # + 0.0 turns -0.0 into 0.0
    return x


def _dumps(obj, indent: int = 0) -> str:
    """JSON with one line per list of numbers, so a pose or a box row reads as one line."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and any(isinstance(v, (list, dict)) for v in obj):
        return "[\n" + ",\n".join(inner + _dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": "), allow_nan=False)


def _get(meta: dict, key: str, where):
    node = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DataError(
                f"{where}: meta.json has no key {key!r}. It was written by another version or by hand; "
                "see docs/DATA.md for the schema, or regenerate the clip with `v4s make-data`."
            )
        node = node[part]
    return node


def _array(meta: dict, key: str, where, shape, dtype=np.float64) -> np.ndarray:
    """meta[key] as an array whose shape matches `shape` (None = any length); null -> NaN."""
    value = _get(meta, key, where)
    try:
        arr = np.array(_nan_nested(value), dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where}: meta.json key {key!r} must be a rectangular array of numbers") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DataError(f"{where}: meta.json key {key!r} has shape {arr.shape}, expected {want}")
    if dtype is not np.float64:
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"{where}: meta.json key {key!r} must hold whole numbers")
        arr = arr.astype(dtype)
    return arr


def _nan_nested(v):
    if isinstance(v, list):
        return [_nan_nested(x) for x in v]
    return np.nan if v is None else v


def validate_meta(meta: dict, where="meta.json") -> dict:
    """Check a clip's meta.json (keys, types, shapes, counts that must agree); return its arrays parsed.

    Returns a dict with `K`, `context_frame_indices`, `context_c2w`, `target_frame_indices`, `target_c2w`,
    `target_boxes` (NaN where unseen), `target_visible`, and `context_boxes` / `context_visible` when stored.
    """
    if not isinstance(meta, dict):
        raise DataError(f"{where}: meta.json must hold a JSON object, got {type(meta).__name__}")
    version = _get(meta, "version", where)
    if version != META_VERSION:
        raise DataError(f"{where}: meta.json version {version!r} is not {META_VERSION}; regenerate with `v4s make-data`")
    task = _get(meta, "task", where)
    if task not in TASKS:
        raise DataError(f"{where}: task {task!r} must be one of {TASKS}")
    if not isinstance(_get(meta, "instruction", where), str):
        raise DataError(f"{where}: 'instruction' must be a string")
    for key in ("width", "height", "fps"):
        v = _get(meta, key, where)
        if not isinstance(v, int) or v <= 0:
            raise DataError(f"{where}: {key!r} must be a positive integer, got {v!r}")
    commands = _get(meta, "commands", where)
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise DataError(f"{where}: 'commands' must be a list of strings (empty for grounding)")
    _get(meta, "scene", where)  # the recipe (Scene.to_dict()), or null for a real scan
    cfg = _get(meta, "clip_config", where)
    try:
        ClipConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: 'clip_config' is not a valid ClipConfig: {e}") from None

    out = {"K": _array(meta, "K", where, (3, 3))}
    for part in ("context", "target"):
        idx = _array(meta, f"{part}.frame_indices", where, (None,), np.int64)
        if len(idx) == 0 or np.any(idx < 0) or np.any(np.diff(idx) <= 0):
            raise DataError(f"{where}: '{part}.frame_indices' must be non-empty, >= 0 and strictly increasing")
        n = len(idx)
        out[f"{part}_frame_indices"] = idx
        out[f"{part}_c2w"] = _array(meta, f"{part}.c2w", where, (n, 4, 4))
    n_t = len(out["target_frame_indices"])
    out["target_boxes"] = boxes = _array(meta, "target.boxes", where, (n_t, None, 4))
    n_obj = boxes.shape[1]
    out["target_visible"] = _array(meta, "target.visible", where, (n_t, n_obj))
    if "boxes" in meta["context"]:  # optional: a real scan may have no boxes for its context
        n_c = len(out["context_frame_indices"])
        out["context_boxes"] = _array(meta, "context.boxes", where, (n_c, n_obj, 4))
        out["context_visible"] = _array(meta, "context.visible", where, (n_c, n_obj))
    target_id = _get(meta, "target_id", where)
    if task == "grounding" and not (isinstance(target_id, int) and 1 <= target_id <= n_obj):
        raise DataError(f"{where}: grounding needs 'target_id' in 1..{n_obj} (the boxes' objects), got {target_id!r}")
    scene = meta["scene"]
    if isinstance(scene, dict) and isinstance(scene.get("objects"), list) and len(scene["objects"]) != n_obj:
        raise DataError(f"{where}: the scene has {len(scene['objects'])} objects but 'target.boxes' has {n_obj}")
    return out


# ------------------------------------------------------------------------------------------ clip I/O

@dataclass
class ClipRecord:
    """A clip read back from disk: the videos, meta.json, and its arrays parsed (see validate_meta)."""

    folder: Path
    meta: dict
    context: np.ndarray  # uint8 (scan_frames, H, W, 3): the whole scan
    target: np.ndarray  # uint8 (target_frames, H, W, 3)
    arrays: dict

    def __getattr__(self, name):  # record.target_c2w, record.K, ... come from `arrays`
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    task = property(lambda self: self.meta["task"])
    instruction = property(lambda self: self.meta["instruction"])
    target_id = property(lambda self: self.meta["target_id"])
    commands = property(lambda self: self.meta["commands"])
    clip_config = property(lambda self: ClipConfig(**self.meta["clip_config"]))

    def scene(self):
        """Rebuild the scene from its stored recipe (synthetic clips only)."""
        if self.meta["scene"] is None:
            raise DataError(f"{self.folder}: this clip has no scene recipe (a real scan?), so it cannot be re-rendered")
        from .scene import Scene

        return Scene.from_dict(self.meta["scene"])


def clip_meta(clip, clip_cfg: ClipConfig) -> dict:
    """The meta.json content of an in-memory `world.Clip` (poses rounded to 1e-6, NaN boxes as null)."""
    n_scan, n_target = len(clip.scan_rgb), len(clip.target_rgb)
    h, w = clip.scan_rgb.shape[1:3]
    p, b = POSE_DECIMALS, BOX_DECIMALS
    return {
        "version": META_VERSION,
        "task": clip.task,
        "instruction": clip.instruction,
        "target_id": None if clip.target_id is None else int(clip.target_id),
        "K": _jsonable(clip.K, p),
        "width": int(w),
        "height": int(h),
        "fps": int(clip_cfg.fps),
        "context": {
            "frame_indices": list(range(n_scan)),
            "c2w": _jsonable(clip.scan_c2w, p),
            "boxes": _jsonable(clip.scan_boxes, b),
            "visible": _jsonable(clip.scan_visible, 4),
        },
        "target": {
            "frame_indices": list(range(n_target)),
            "c2w": _jsonable(clip.target_c2w, p),
            "boxes": _jsonable(clip.target_boxes, b),
            "visible": _jsonable(clip.target_visible, 4),
        },
        "commands": [str(c) for c in (clip.commands or [])],
        "seed": int(getattr(clip, "seed", 0)),
        "scene": _jsonable(clip.scene.to_dict()),
        "clip_config": clip_cfg.to_dict(),
        # make-data --start scan: the walk starts at this scan frame (absent for the default start, so the default
        # clips' meta.json stay as they were)
        **({} if getattr(clip, "start_scan_frame", None) is None else {"start_scan_frame": int(clip.start_scan_frame)}),
        # make-data --scan canonical (absent for the default random scan, for the same reason)
        **({} if getattr(clip, "scan_rule", "random") == "random" else {"scan_rule": clip.scan_rule}),
        # make-data --end scan: the walk ends at (holds) this scan frame (absent otherwise, for the same reason)
        **({} if getattr(clip, "end_scan_frame", None) is None else {"end_scan_frame": int(clip.end_scan_frame)}),
    }


def write_clip(folder, context, target, meta: dict) -> Path:
    """Write a clip folder from frames + a meta dict (checked first). The way to add real scans, too."""
    folder = Path(folder)
    meta = _jsonable(meta)
    arrays = validate_meta(meta, where=folder)
    for name, frames in (("context", context), ("target", target)):
        frames = np.asarray(frames)
        want = (len(arrays[f"{name}_frame_indices"]), meta["height"], meta["width"], 3)
        if frames.shape != want:
            raise DataError(f"{folder}: {name} frames have shape {frames.shape} but meta.json describes {want}")
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "context.mp4", context, meta["fps"])
    write_video(folder / "target.mp4", target, meta["fps"])
    (folder / "meta.json").write_text(_dumps(meta) + "\n")
    return folder


def save_clip(clip, folder, clip_cfg) -> Path:
    """Save an in-memory `world.Clip` (from `make_clip`) as a clip folder."""
    clip_cfg = get_clip_config(clip_cfg)
    return write_clip(folder, clip.scan_rgb, clip.target_rgb, clip_meta(clip, clip_cfg))


def load_clip(folder) -> ClipRecord:
    """Read a clip folder back (decord) and check that videos and meta.json agree; DataError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such clip folder")
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}; a clip folder holds {', '.join(FILES)} (docs/DATA.md)")
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{folder / 'meta.json'}: not valid JSON ({e}); regenerate the clip") from None
    arrays = validate_meta(meta, where=folder)
    context = read_video(folder / "context.mp4", expected_frames=len(arrays["context_frame_indices"]))
    target = read_video(folder / "target.mp4", expected_frames=len(arrays["target_frame_indices"]))
    for name, frames in (("context.mp4", context), ("target.mp4", target)):
        if frames.shape[1:3] != (meta["height"], meta["width"]):
            raise DataError(f"{folder / name}: frames are {frames.shape[2]}x{frames.shape[1]} but meta.json says "
                            f"{meta['width']}x{meta['height']}")
    return ClipRecord(folder=folder, meta=meta, context=context, target=target, arrays=arrays)


def clip_folders(root) -> list[Path]:
    """The clip folders under `root` (every sub-folder holding a meta.json), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder; create one with `v4s make-data --out {root}`")
    return sorted(p.parent for p in root.glob("*/meta.json"))


# Splits. "id" scenes (training and held-out alike: use disjoint --seed ranges) never contain the held-out
# pair below; "ood" scenes are out of distribution the way the paper's outdoor scenes are: rooms larger than
# any trained on, 11-12 objects (training has 4-10), and the target is always the held-out pair, a colour and
# category each trained on but never together.
SPLITS = ("id", "ood")
HELDOUT_PAIR = ("blue", "plant")
OOD_ROOM = (8.8, 10.5)  # metres; training rooms are at most 4.6 + 0.15 * 10 + 2.5 = 8.6 m on a side


def _has_pair(scene, pair=HELDOUT_PAIR):
    return [o.id for o in scene.objects if (o.color, o.category) == pair]


def split_scene(seed: int, split: str = "id"):
    """The scene of `seed` in `split`, with the target id to use, or None when this seed is not in the split."""
    from .scene import make_scene

    if split == "id":
        scene = make_scene(seed)
        return None if _has_pair(scene) else (scene, None)
    if split == "ood":
        rng = np.random.default_rng([seed, 77])
        room = (float(rng.uniform(*OOD_ROOM)), float(rng.uniform(*OOD_ROOM)), float(rng.uniform(2.8, 3.2)))
        scene = make_scene(seed, n_objects=int(rng.integers(11, 13)), room=room)
        ids = _has_pair(scene)
        return (scene, ids[0]) if ids else None
    raise V4SError(f"unknown split {split!r}; choose one of {SPLITS}")


def make_dataset(out, task: str, n_scenes: int, seed: int = 0, clip_cfg="lite", progress: bool = True,
                 split: str = "id", device: str = "cpu", start: str = "anywhere", scan: str = "random",
                 end: str = "object") -> list[Path]:
    """Render `n_scenes` clips into `out/<task>_<seed>/`, drawing seeds seed, seed+1, ... and keeping those that
    belong to `split` (every seed belongs to "id" unless its room holds the held-out pair). Disjoint seed ranges
    give disjoint sets. `start`: where grounding walks start (world.make_clip: "anywhere" or "scan"); `scan`: the
    scan's rule ("random" or "canonical", trajectories.scan_trajectory); `end`: where they end ("object" or "scan":
    the scan's best view of the target)."""
    from tqdm.auto import tqdm

    from .language import AmbiguousTarget
    from .world import make_clip

    if task not in TASKS:
        raise V4SError(f"unknown task {task!r}; choose one of {TASKS}")
    if n_scenes < 1:
        raise V4SError(f"n_scenes={n_scenes} must be >= 1")
    if split == "ood" and task != "grounding":
        raise V4SError("the ood split holds out a target (colour, category) pair, so it is for --task grounding")
    if start != "anywhere" and task != "grounding":
        raise V4SError(f"--start {start} is for --task grounding (navigation walks start where their commands do)")
    if end != "object" and task != "grounding":
        raise V4SError(f"--end {end} is for --task grounding (navigation walks end where their commands do)")
    clip_cfg = get_clip_config(clip_cfg)
    out = Path(out)
    folders = []
    s = seed
    with tqdm(total=n_scenes, desc=f"make-data {task} ({split})", unit="clip", disable=not progress) as bar:
        while len(folders) < n_scenes:
            drawn = split_scene(s, split)
            if drawn is not None:
                scene, target_id = drawn
                try:
                    clip = make_clip(scene, task, clip_cfg, seed=s, target_id=target_id, device=device, start=start,
                                     scan=scan, end=end)
                except AmbiguousTarget:  # no instruction names the target (a 2026-12-03 GPU run lost a whole
                    pass                 # make-data process to one such room): the next seed, as for another split
                else:
                    folders.append(save_clip(clip, out / f"{task}_{s:06d}", clip_cfg))
                    bar.update(1)
            s += 1
            if s - seed > 200 * n_scenes + 1000:
                raise V4SError(f"found only {len(folders)} of {n_scenes} {split} scenes in seeds {seed}..{s}")
    return folders


# ------------------------------------------------------------------------------------------ dataset

class ClipDataset(torch.utils.data.Dataset):
    """Clip folders -> training items, with the context chunks sampled afresh per item and epoch.

    Item: `context` uint8 (Fc, H, W, 3), `context_frame_indices` int64 (Fc,) (source indices),
    `context_positions` int64 (Fc,) (their RoPE positions, `index // 4` per chunk: computed here once, read by
    training and sampling alike; absent when the indices are not chunks of consecutive frames; docs/DESIGN.md,
    "Items"), `target` uint8 (Ft, H, W, 3), `instruction`, `boxes` float32 (Ft, 4) of the target object
    (NaN where unseen; all NaN for navigation), `context_c2w` / `target_c2w` float32, `meta`.
    Call `set_epoch(e)` each epoch for a new draw of the chunks (same seed + epoch = same draw). The draw is keyed
    by the item's position in the sorted folder, so a room's context depends on the folder it sits in
    (docs/DATA.md, "Context sampling happens at load time").
    """

    def __init__(self, root, clip_cfg="lite", sampling: str = "noncontiguous", seed: int = 0):
        if sampling not in MODES:
            raise V4SError(f"unknown sampling {sampling!r}; choose one of {MODES}")
        self.root, self.clip_cfg, self.sampling, self.seed = Path(root), get_clip_config(clip_cfg), sampling, seed
        self.folders = clip_folders(root)
        if not self.folders:
            raise DataError(f"{root}: no clip folders (sub-folders with meta.json); create some with `v4s make-data`")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> dict:
        rec = load_clip(self.folders[i])
        cfg = self.clip_cfg
        if (rec.meta["width"], rec.meta["height"]) != (cfg.width, cfg.height) or len(rec.target) != cfg.target_frames:
            raise DataError(
                f"{rec.folder}: the clip is {rec.meta['width']}x{rec.meta['height']} with {len(rec.target)} target frames, "
                f"but the dataset's clip config wants {cfg.width}x{cfg.height} with {cfg.target_frames}; "
                "regenerate the data with the same --clip-config / --size, or pass the matching clip_cfg."
            )
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pick = sample_context_frames(len(rec.context), cfg.context_chunks, rng, self.sampling)
        n_t = len(rec.target)
        if rec.task == "grounding":
            boxes = rec.target_boxes[:, rec.target_id - 1]
        else:
            boxes = np.full((n_t, 4), np.nan)
        item = {
            "context": torch.from_numpy(rec.context[pick]),
            "context_frame_indices": torch.from_numpy(rec.context_frame_indices[pick]),
            "target": torch.from_numpy(rec.target),
            "instruction": rec.instruction,
            "boxes": torch.from_numpy(boxes.astype(np.float32)),
            "context_c2w": torch.from_numpy(rec.context_c2w[pick].astype(np.float32)),
            "target_c2w": torch.from_numpy(rec.target_c2w.astype(np.float32)),
            "meta": rec.meta,
        }
        try:  # the RoPE positions, computed once here: training and sampling (latents.encode_clip) read this key
            positions = context_positions(item["context_frame_indices"])
            item["context_positions"] = torch.as_tensor(positions, dtype=torch.long)
        except V4SError:  # frame indices that are not chunks of consecutive frames (a hand-made folder) still load,
            pass  # as before; the encoder raises the same error when it needs the positions
        return item


def collate_clips(items: list[dict]) -> dict:
    """DataLoader collate_fn: stack the tensors, keep `instruction` and `meta` as lists."""
    return {k: [it[k] for it in items] if k in ("instruction", "meta") else torch.stack([it[k] for it in items])
            for k in items[0]}


# ---------------------------------------------------------------------------------------------- CLI

def parse_size(text: str) -> tuple[int, int]:
    """'104x64' -> (104, 64)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m[1]) < 8 or int(m[2]) < 8:
        raise V4SError(f"--size {text!r} must be WIDTHxHEIGHT in pixels, each at least 8, e.g. 104x64 (lite) or 416x256 (paper)")
    return int(m[1]), int(m[2])


def _cli(args) -> int:
    cfg = get_clip_config(args.clip_config)
    if args.size:
        w, h = parse_size(args.size)
        cfg = cfg.with_(width=w, height=h)
    folders = make_dataset(args.out, args.task, args.scenes, args.seed, cfg, progress=not args.no_progress,
                           split=args.split, device=str(get_device(args.device)), start=args.start, scan=args.scan,
                           end=args.end)
    print(f"wrote {len(folders)} {args.task} clips ({cfg.width}x{cfg.height}, scan {cfg.scan_frames} frames, "
          f"target {cfg.target_frames}) to {args.out}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("make-data", help="render a synthetic dataset: one folder per clip (mp4 + meta.json)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--scenes", type=int, required=True, help="number of scenes (one clip each)")
    p.add_argument("--seed", type=int, default=0, help="seeds seed, seed+1, ... are drawn (default 0); use disjoint ranges for "
                                                       "training and held-out sets")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 104x64 (default: the clip config's)")
    p.add_argument("--clip-config", default="lite", choices=["quick", "lite", "paper"],
                   help="frame counts: quick (CPU), lite (default), paper")
    p.add_argument("--split", default="id", choices=SPLITS,
                   help="id: the training distribution (default; training and held-out sets from disjoint seed ranges); "
                        f"ood: larger rooms, 11-12 objects, target a {' '.join(HELDOUT_PAIR)} (never trained on)")
    p.add_argument("--device", default="cpu", help="where to render: cpu (default), cuda or auto (same bytes)")
    p.add_argument("--start", default="anywhere", choices=["anywhere", "scan"],
                   help="where grounding walks start: anywhere (default: a view the scan never had) or scan (one of "
                   "the scan's views, so the walk's first frame is a frame of the context video)")
    p.add_argument("--end", default="object", choices=["object", "scan"],
                   help="where grounding walks end: object (default: a place near the target the scan never stood "
                   "at) or scan (the scan's view that frames the target best, so the final view is in the context "
                   "video)")
    p.add_argument("--scan", default="random", choices=["random", "canonical"],
                   help="the context scan: random (default: its ring starts anywhere, either way round) or canonical "
                   "(always the same start and direction, so a frame's index says where its camera stands)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)

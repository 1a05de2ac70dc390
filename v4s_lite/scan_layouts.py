"""The recordings `v4s import-scan` reads, each in its own layout and conventions (`scans.py` converts them):

- ScanNet++ iPhone: `iphone/rgb/frame_XXXXXX.jpg`, `iphone/pose_intrinsic_imu.json` (`frame_XXXXXX` ->
  `aligned_pose` 4x4 camera-to-world, `intrinsic` 3x3), boxes in `scans/segments_anno.json` (`segGroups[].label`,
  `.obb`).
- ARKitScenes 3DOD: `<id>_frames/lowres_wide/<id>_<ts>.png`, `<id>_frames/lowres_wide.traj` (lines
  `ts rx ry rz tx ty tz`: world-to-camera, axis-angle), `<id>_frames/lowres_wide_intrinsics/<id>_<ts>.pincam`
  (`w h fx fy cx cy`), boxes in `<id>_3dod_annotation.json` (`data[].label`, `.segments.obbAligned`).

docs/DATA.md, "Bring your own scans", says which fields come from which documented source and what is assumed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .utils import V4SError

LAYOUTS = ("scannetpp", "arkitscenes")
# Frame rates of the recordings, for --fps: ScanNet++'s iPhone rgb.mp4 is 60 fps (an assumption: the toolkit
# extracts every frame with ffmpeg and does not state the rate); ARKitScenes' rate is read from the timestamps.
SOURCE_FPS = {"scannetpp": 60.0}
ARKIT_MATCH_S = 0.005  # a frame's pose is the trajectory sample within 5 ms of its timestamp


@dataclass
class Scan:
    """A recording as read from disk, in its own conventions (nothing converted yet).

    `images`: image files in time order (N,); `numbers`: their frame numbers in the recording (N,);
    `c2w` (N, 4, 4) camera-to-world in `camera` axes; `K` (N, 3, 3) at the images' own size, OpenCV pixel
    convention (pixel centres at integers); `labels` / `corners` (n_obj, 8, 3): 3D boxes in the scan's world.
    """

    name: str
    layout: str
    images: list
    numbers: np.ndarray
    c2w: np.ndarray
    K: np.ndarray
    camera: str = "opencv"
    up: str = "auto"
    fps: float = 30.0
    labels: list = field(default_factory=list)
    corners: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 3)))


# ------------------------------------------------------------------------------------------------ reading
def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise V4SError(f"{path}: cannot read it as JSON ({e}); copy the file again from the dataset") from None


def _matrix(value, shape, what: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != shape or not np.all(np.isfinite(m)):
        raise V4SError(f"{what} must be a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}: "
                       "check that the file comes from the layout you named (--layout) and is not truncated")
    return m


def obb_corners(centroid, lengths, axes) -> np.ndarray:
    """The 8 corners (8, 3) of an oriented box: `axes` (9,) is a 3x3 rotation whose ROWS are the box's axes
    (ARKitScenes' `compute_box_3d` multiplies the local corners by its transpose; ScanNet++ assumed the same)."""
    R = _matrix(np.ravel(axes), (9,), "obb normalizedAxes").reshape(3, 3)
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return _matrix(centroid, (3,), "obb centroid") + (signs * _matrix(lengths, (3,), "obb axesLengths") / 2) @ R


def _missing(what: str, missing: list, where: Path, fix: str):
    shown = ", ".join(str(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise V4SError(f"{where}: no {what} for {len(missing)} frame(s): {shown}. {fix}")


def read_scannetpp(root) -> Scan:
    """A ScanNet++ scene folder (holding `iphone/`) or its `iphone/` folder itself."""
    root = Path(root)
    iphone = root / "iphone" if (root / "iphone").is_dir() else root
    scene = iphone.parent if iphone.name == "iphone" else root
    images = sorted((iphone / "rgb").glob("frame_*.jpg"))
    if not images:
        raise V4SError(f"{iphone / 'rgb'}: no frame_XXXXXX.jpg images. Extract them with the ScanNet++ toolkit "
                       "(python -m iphone.prepare_iphone_data ..., extract_rgb: true)")
    poses = _read_json(iphone / "pose_intrinsic_imu.json")
    missing = [p.stem for p in images if p.stem not in poses]
    if missing:
        _missing("pose in pose_intrinsic_imu.json", missing, iphone, "Use the json of the same scene, or delete "
                 "frames without a pose from iphone/rgb/ (the toolkit's extract_only_rgb_in_colmap keeps posed ones).")
    c2w = np.stack([_matrix(poses[p.stem].get("aligned_pose"), (4, 4), f"{p.stem} aligned_pose") for p in images])
    K = np.stack([_matrix(poses[p.stem].get("intrinsic"), (3, 3), f"{p.stem} intrinsic") for p in images])
    labels, corners = [], []
    anno = scene / "scans" / "segments_anno.json"
    if anno.is_file():
        for g in _read_json(anno).get("segGroups", []):
            if "obb" in g:
                labels.append(str(g["label"]))
                corners.append(obb_corners(g["obb"]["centroid"], g["obb"]["axesLengths"], g["obb"]["normalizedAxes"]))
    numbers = np.array([int(p.stem.split("_")[-1]) for p in images])
    return Scan(scene.name, "scannetpp", images, numbers, c2w, K, camera="opencv", up="z", fps=SOURCE_FPS["scannetpp"],
                labels=labels, corners=np.array(corners).reshape(-1, 8, 3))


def rotation_from_axis_angle(v) -> np.ndarray:
    """Rodrigues: axis-angle (3,) in radians -> rotation (3, 3) (what cv2.Rodrigues does)."""
    v = np.asarray(v, float)
    theta = np.linalg.norm(v)
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * Kx + (1 - math.cos(theta)) * Kx @ Kx


# long (~65 lines): the layout's files (frames, trajectory, per-frame intrinsics, 3D boxes) read and matched in
# one place, each file with its own error
def read_arkitscenes(root) -> Scan:
    """An ARKitScenes 3DOD video folder `<video_id>/` (holding `<video_id>_frames/`) or the `_frames` folder."""
    root = Path(root)
    vid = root.name[:-len("_frames")] if root.name.endswith("_frames") else root.name
    frames_dir = root if root.name.endswith("_frames") else root / f"{vid}_frames"
    images = sorted((frames_dir / "lowres_wide").glob(f"{vid}_*.png"), key=lambda p: float(p.stem.split("_")[-1]))
    if not images:
        raise V4SError(f"{frames_dir / 'lowres_wide'}: no {vid}_<timestamp>.png images; point at the video's folder "
                       "(ARKitScenes/3dod/<split>/<video_id>) downloaded with lowres_wide, lowres_wide.traj, "
                       "lowres_wide_intrinsics")
    stamps = np.array([float(p.stem.split("_")[-1]) for p in images])
    traj_path = frames_dir / "lowres_wide.traj"
    if not traj_path.is_file():
        raise V4SError(f"{traj_path}: missing; download the video's lowres_wide.traj (the camera poses)")
    rows = []
    for i, line in enumerate(traj_path.read_text().splitlines()):
        if line.strip():
            try:
                rows.append([float(x) for x in line.split()])
            except ValueError:
                rows.append([])
            if len(rows[-1]) != 7:
                raise V4SError(f"{traj_path}:{i + 1}: a line holds 7 numbers `timestamp rx ry rz tx ty tz`, got "
                               f"{line.strip()[:80]!r}")
    traj = np.array(rows).reshape(-1, 7)
    # each frame takes the trajectory sample nearest its timestamp, within ARKIT_MATCH_S (as ARKitScenes' loaders)
    nearest = np.abs(stamps[:, None] - traj[None, :, 0]).argmin(1) if len(traj) else np.zeros(len(stamps), int)
    ok = np.abs(traj[nearest, 0] - stamps) <= ARKIT_MATCH_S if len(traj) else np.zeros(len(stamps), bool)
    if not ok.all():
        _missing(f"pose within {ARKIT_MATCH_S * 1000:.0f} ms in lowres_wide.traj", [images[i].name for i in
                 np.flatnonzero(~ok)], frames_dir, "Use the .traj of the same video, or remove those frames.")
    c2w = []
    for r in traj[nearest]:
        w2c = np.eye(4)  # the .traj stores world -> camera (ARKitScenes' TrajStringToMatrix inverts it)
        w2c[:3, :3], w2c[:3, 3] = rotation_from_axis_angle(r[1:4]), r[4:7]
        c2w.append(np.linalg.inv(w2c))
    pincams = frames_dir / "lowres_wide_intrinsics"
    found = {p.stem: p for p in pincams.glob(f"{vid}_*.pincam")}
    if len(found) != len(images):
        want = {p.stem for p in images}
        missing = sorted(want - set(found))
        extra = sorted(set(found) - want)
        raise V4SError(f"{pincams}: {len(found)} .pincam files for {len(images)} frames (missing: "
                       f"{missing[:3]}{'...' if len(missing) > 3 else ''}, without a frame: {extra[:3]}). Every "
                       "lowres_wide/<id>_<ts>.png needs lowres_wide_intrinsics/<id>_<ts>.pincam; download both again.")
    K = []
    for p in images:
        if p.stem not in found:
            _missing("intrinsics (.pincam)", [p.name], pincams, "Download lowres_wide_intrinsics again.")
        v = np.array(found[p.stem].read_text().split(), dtype=float)
        if v.shape != (6,):
            raise V4SError(f"{found[p.stem]}: a .pincam holds 6 numbers `width height fx fy cx cy`, got {v.size}")
        K.append(np.array([[v[2], 0, v[4]], [0, v[3], v[5]], [0, 0, 1]]))
    labels, corners = [], []
    anno = root / f"{vid}_3dod_annotation.json"
    if anno.is_file():
        for d in _read_json(anno).get("data", []):
            obb = d["segments"]["obbAligned"]
            labels.append(str(d["label"]))
            corners.append(obb_corners(obb["centroid"], obb["axesLengths"], obb["normalizedAxes"]))
    fps = 1.0 / float(np.median(np.diff(stamps))) if len(stamps) > 1 else 10.0
    return Scan(vid, "arkitscenes", images, np.arange(len(images)), np.stack(c2w), np.stack(K), camera="opencv",
                up="auto", fps=fps, labels=labels, corners=np.array(corners).reshape(-1, 8, 3))


READERS = {"scannetpp": read_scannetpp, "arkitscenes": read_arkitscenes}


def detect_layout(root) -> str:
    root = Path(root)
    if (root / "iphone" / "pose_intrinsic_imu.json").is_file() or (root / "pose_intrinsic_imu.json").is_file():
        return "scannetpp"
    if root.name.endswith("_frames") or (root / f"{root.name}_frames").is_dir():
        return "arkitscenes"
    raise V4SError(f"{root}: neither a ScanNet++ scene (iphone/pose_intrinsic_imu.json) nor an ARKitScenes video "
                   f"({root.name}_frames/); pass --layout {'|'.join(LAYOUTS)} or see docs/DATA.md")

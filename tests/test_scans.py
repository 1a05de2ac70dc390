"""`v4s import-scan`: a room rendered by the course, exported as ScanNet++ and as ARKitScenes would write it, read back.

The exporters below write what the real datasets hold (docs/DATA.md, "Bring your own scans"): JPEG frames + a pose
json (ScanNet++), PNG frames + a world-to-camera axis-angle .traj + one .pincam per frame in a y-up world
(ARKitScenes), OpenCV intrinsics (pixel centres at integers), oriented 3D boxes. The converter must give back the
rendered frames, the course's poses and K, and clips that ClipDataset and RoPE accept.
"""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from v4s_lite import scans
from v4s_lite.camera import intrinsics, projected_box
from v4s_lite.config import QUICK, TrainConfig
from v4s_lite.data import ClipDataset, load_clip
from v4s_lite.render import render
from v4s_lite.rope import context_positions
from v4s_lite.scene import make_scene
from v4s_lite.trajectories import scan_trajectory
from v4s_lite.utils import V4SError

SRC_W, SRC_H = 208, 128  # the "camera" records at twice the clip size; the converter halves it
CFG = QUICK  # 104x64, target 17 frames of which 4 box frames
N_SRC = 120
# ARKitScenes' world is y-up here: course (x, y, z) -> (x, z, -y), a proper rotation
Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])


def axis_angle(R) -> np.ndarray:
    """Rotation (3, 3) -> axis-angle (3,) (what cv2.Rodrigues gives; angles below pi)."""
    theta = math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    if theta < 1e-12:
        return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * math.sin(theta))
    return w * theta


def opencv_K(K):
    """The course's K (pixel i covers [i, i+1)) in OpenCV's convention (pixel centres at integers)."""
    K = K.copy()
    K[:2, 2] -= 0.5
    return K


@pytest.fixture(scope="module")
def room():
    scene = make_scene(3)  # 9 objects, two "black cabinet"s (an ambiguous label)
    c2w = scan_trajectory(scene, N_SRC, 3)
    rgb = render(scene, c2w, intrinsics(SRC_W, SRC_H), SRC_W, SRC_H).rgb
    return scene, c2w, rgb


def export_scannetpp(root, scene, c2w, rgb, drop=None):
    """As the ScanNet++ toolkit leaves a scene: iphone/rgb/frame_XXXXXX.jpg, iphone/pose_intrinsic_imu.json, scans/segments_anno.json."""
    (root / "iphone" / "rgb").mkdir(parents=True)
    K = opencv_K(intrinsics(SRC_W, SRC_H))
    poses = {}
    for i, (pose, frame) in enumerate(zip(c2w, rgb)):
        Image.fromarray(frame).save(root / "iphone" / "rgb" / f"frame_{i:06d}.jpg", quality=95)
        poses[f"frame_{i:06d}"] = {"pose": pose.tolist(), "aligned_pose": pose.tolist(), "intrinsic": K.tolist(),
                                   "imu": {}}
    if drop:
        del poses[drop]
    (root / "iphone" / "pose_intrinsic_imu.json").write_text(json.dumps(poses))
    groups = [{"id": o.id, "label": o.name, "obb": {"centroid": o.center.tolist(), "axesLengths": o.size.tolist(),
                                                     "normalizedAxes": np.eye(3).ravel().tolist()}}
              for o in scene.objects]
    (root / "scans").mkdir()
    (root / "scans" / "segments_anno.json").write_text(json.dumps({"segGroups": groups}))
    return root


def export_arkitscenes(root, scene, c2w, rgb, vid="41069021"):
    """As ARKitScenes 3dod ships a video: <id>_frames/lowres_wide/*.png, lowres_wide.traj, lowres_wide_intrinsics/*.pincam,
    <id>_3dod_annotation.json; a y-up world, poses world-to-camera."""
    frames = root / vid / f"{vid}_frames"
    (frames / "lowres_wide").mkdir(parents=True)
    (frames / "lowres_wide_intrinsics").mkdir()
    K = opencv_K(intrinsics(SRC_W, SRC_H))
    lines = []
    for i, (pose, frame) in enumerate(zip(c2w, rgb)):
        ts = f"{6000.0 + i * 0.1:.3f}"
        Image.fromarray(frame).save(frames / "lowres_wide" / f"{vid}_{ts}.png")
        (frames / "lowres_wide_intrinsics" / f"{vid}_{ts}.pincam").write_text(
            f"{SRC_W} {SRC_H} {K[0, 0]} {K[1, 1]} {K[0, 2]} {K[1, 2]}\n")
        src = np.eye(4)
        src[:3, :3], src[:3, 3] = Y_UP @ pose[:3, :3], Y_UP @ pose[:3, 3]
        w2c = np.linalg.inv(src)
        rx, ry, rz = axis_angle(w2c[:3, :3])
        lines.append(f"{float(ts) + 0.001:.3f} {rx:.12f} {ry:.12f} {rz:.12f} " + " ".join(f"{t:.12f}" for t in w2c[:3, 3]))
    (frames / "lowres_wide.traj").write_text("\n".join(lines) + "\n")
    data = [{"uid": str(o.id), "label": o.name,
             "segments": {"obbAligned": {"centroid": (Y_UP @ o.center).tolist(), "axesLengths": o.size.tolist(),
                                         "normalizedAxes": Y_UP.T.ravel().tolist()}}}  # rows: the box axes
            for o in scene.objects]
    (root / vid / f"{vid}_3dod_annotation.json").write_text(json.dumps({"data": data}))
    return root / vid


def check_clip(folder, scene, c2w, stride):
    """The imported clip against the truth: poses, K, frames, boxes."""
    rec = load_clip(folder)
    truth = c2w[::stride][:len(rec.context)]
    assert len(rec.context) == len(c2w[::stride])
    np.testing.assert_allclose(rec.context_c2w, truth, atol=1e-5)
    np.testing.assert_allclose(rec.K, intrinsics(CFG.width, CFG.height), atol=1e-6)
    want = render(scene, truth, rec.K, CFG.width, CFG.height).rgb.astype(float)
    err = np.abs(rec.context.astype(float) - want).mean()
    shifted = np.abs(rec.context[1:].astype(float) - want[:-1]).mean()  # a one-frame slip must show
    assert err < 6, err
    assert shifted > 2 * err
    # the target: a piece of the scan ending on the named object, its last frame held under the box
    obj = next(o for o in scene.objects if f"Find the {o.name}." == rec.instruction)
    assert rec.target_id == obj.id
    end = rec.meta["target"]["scan_frames"][-1]
    np.testing.assert_allclose(rec.target_c2w[-CFG.box_frames:], np.repeat(truth[end][None], CFG.box_frames, 0), atol=1e-5)
    np.testing.assert_allclose(rec.target_boxes[-1, obj.id - 1], projected_box(obj, truth[end], rec.K, CFG.width, CFG.height),
                               atol=2e-3)
    return rec


def test_scannetpp_round_trip(room, tmp_path):
    scene, c2w, rgb = room
    src = export_scannetpp(tmp_path / "scene_abc", scene, c2w, rgb)
    folders = scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=1, max_clips=2)
    assert scans.detect_layout(src) == "scannetpp"
    assert len(folders) == 2 and all("black-cabinet" not in f.name for f in folders)  # ambiguous labels skipped
    for f in folders:
        check_clip(f, scene, c2w, stride=1)


def test_arkitscenes_round_trip_stride3_and_dataset(room, tmp_path):
    scene, c2w, rgb = room
    src = export_arkitscenes(tmp_path, scene, c2w, rgb)
    folders = scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=3, max_clips=1)
    rec = check_clip(folders[0], scene, c2w, stride=3)
    assert rec.meta["source"]["frame_numbers"][:3] == [0, 3, 6]
    ds = ClipDataset(tmp_path / "out", CFG, seed=0)
    for epoch in range(5):  # the chunks ClipDataset draws are valid RoPE input, whatever the stride
        ds.set_epoch(epoch)
        item = ds[0]
        assert len(context_positions(item["context_frame_indices"])) == 1 + CFG.context_chunks
        assert item["target"].shape == (CFG.target_frames, CFG.height, CFG.width, 3)


def test_wrong_pose_convention_is_caught(room, tmp_path):
    """Read as OpenGL, the ARKitScenes poses come out rotated: the comparison the round trips rely on fails."""
    scene, c2w, rgb = room
    src = export_arkitscenes(tmp_path, scene, c2w, rgb)
    scan = scans.read_arkitscenes(src)
    wrong, _ = scans.to_course_poses(scan.c2w, camera="opengl", up="auto")
    right, _ = scans.to_course_poses(scan.c2w, camera="opencv", up="auto")
    np.testing.assert_allclose(right, c2w, atol=1e-5)
    assert np.abs(wrong - c2w).max() > 0.5
    with pytest.raises(V4SError, match="upside down.*--camera opencv"):  # an explicit up axis names the fix
        scans.to_course_poses(scan.c2w, camera="opengl", up="y")


def test_conventions_unit():
    """OpenGL -> OpenCV flips the camera's y and z; a y-up world is turned onto z-up."""
    gl = np.eye(4)[None]
    cv, A = scans.to_course_poses(gl, camera="opengl", up="y")
    np.testing.assert_allclose(A[:3, :3] @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    assert np.linalg.det(A[:3, :3]) == pytest.approx(1)
    np.testing.assert_allclose(cv[0, :3, 1], A[:3, :3] @ [0, -1, 0], atol=1e-12)  # image down = world down
    np.testing.assert_allclose(scans.rotation_from_axis_angle(axis_angle(scans.rotation_to_z([1, 0, 0]))),
                               scans.rotation_to_z([1, 0, 0]), atol=1e-12)


def test_rope_length_error_and_raising_the_table(room, tmp_path):
    scene, c2w, rgb = room
    src = export_scannetpp(tmp_path / "s", scene, c2w, rgb)
    with pytest.raises(V4SError, match=r"rope_max_seq_len: 35.*--rope-max-seq-len 35"):
        scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=1, rope_max_seq_len=32)
    assert scans.rope_positions_needed(N_SRC, CFG) == 35
    assert scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=1, rope_max_seq_len=35, max_clips=1)

    # the fix the message names works for a preset model: positions past 1024 run once the table is longer
    from v4s_lite.model import build_model

    cfg = TrainConfig(model="tiny", model_overrides={"rope_max_seq_len": 2048}, device="cpu")
    model = build_model(cfg)
    assert model.transformer.rope.max_seq_len == 2048
    ctx, first, noisy = torch.zeros(1, 12, 2, 4, 4), torch.zeros(1, 12, 1, 4, 4), torch.zeros(1, 12, 1, 4, 4)
    args = (ctx, first, noisy, torch.tensor([500.0]), torch.zeros(1, 4, 64), [0, 1500])
    assert model(*args).shape == noisy.shape
    with pytest.raises(V4SError, match="outside the table"):
        build_model(TrainConfig(model="tiny", device="cpu"))(*args)


def test_bad_inputs_say_what_to_fix(room, tmp_path):
    scene, c2w, rgb = room
    src = export_scannetpp(tmp_path / "a", scene, c2w[:40], rgb[:40], drop="frame_000007")
    with pytest.raises(V4SError, match=r"no pose in pose_intrinsic_imu.json for 1 frame\(s\): frame_000007"):
        scans.read_scannetpp(src)
    poses = json.loads((src / "iphone" / "pose_intrinsic_imu.json").read_text())
    (src / "iphone" / "rgb" / "frame_000007.jpg").unlink()
    poses["frame_000003"]["aligned_pose"] = poses["frame_000003"]["aligned_pose"][:3]  # 3x4
    (src / "iphone" / "pose_intrinsic_imu.json").write_text(json.dumps(poses))
    with pytest.raises(V4SError, match=r"frame_000003 aligned_pose must be a finite 4x4 matrix, got shape \(3, 4\)"):
        scans.read_scannetpp(src)
    src = export_scannetpp(tmp_path / "b", scene, c2w[:60], rgb[:60])
    with pytest.raises(V4SError, match=r"20 frames after subsampling \(--stride 3\).*smaller --stride"):
        scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=3)
    ark = export_arkitscenes(tmp_path / "c", scene, c2w[:30], rgb[:30])
    next((ark / f"{ark.name}_frames" / "lowres_wide_intrinsics").glob("*.pincam")).unlink()
    with pytest.raises(V4SError, match=r"29 .pincam files for 30 frames"):
        scans.read_arkitscenes(ark)
    with pytest.raises(V4SError, match="neither a ScanNet"):
        scans.detect_layout(tmp_path)


def test_navigation_without_boxes_and_cli(room, tmp_path):
    from v4s_lite.cli import main

    scene, c2w, rgb = room
    src = export_scannetpp(tmp_path / "s", scene, c2w, rgb)
    (src / "scans" / "segments_anno.json").unlink()
    assert main(["import-scan", str(src), "--out", str(tmp_path / "out"), "--clip-config", "quick", "--stride", "1",
                 "--max-clips", "2"]) == 0
    rec = load_clip(tmp_path / "out" / "s_nav000")
    assert rec.task == "navigation" and rec.commands and rec.instruction
    np.testing.assert_allclose(rec.target_c2w, c2w[:CFG.target_frames], atol=1e-5)


def test_eval_on_an_imported_clip(room, tmp_path, capsys):
    """`v4s eval` scores what it can of a real clip and says what it cannot."""
    from v4s_lite.bbox import bbox_frames
    from v4s_lite.data import write_video
    from v4s_lite.evaluate import evaluate_videos

    scene, c2w, rgb = room
    src = export_scannetpp(tmp_path / "s", scene, c2w, rgb)
    folder = scans.import_scan(src, tmp_path / "out", clip_config="quick", stride=1, max_clips=1)[0]
    rec = load_clip(folder)
    boxes = rec.target_boxes[:, rec.target_id - 1]
    write_video(folder / "target.mp4", bbox_frames(rec.target, boxes, CFG.box_frames), CFG.fps)
    result = evaluate_videos(tmp_path / "out", tmp_path / "eval", figures=True, progress=False)
    m = result["per_clip"][folder.name]
    assert m["first_psnr"] > 35 and m["box_IoU_recorded"] > 0.7 and m["frame_motion"] > 0
    assert m["IF@0.2"] is None and "SD" in m["not_measured"]
    assert any("real scan" in n for n in result["notes"])

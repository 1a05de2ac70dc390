"""The pictures the pose estimator compares (notebook 08), with no estimator state (`poses.PoseEstimator` holds the
library and the render cache).

Frames and renders become float tensors and are blurred, so the coarse match forgives a pixel of misalignment. A
video that went through a codec is compared with renders through the same codec (`_degrade_fn`). The render
library's trick: a cube map rendered once per grid position, warped by grid_sample to every heading and tilt
(`_cube_to_views`: 6 small renders per position instead of one per heading x tilt).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _scaled_K(K, sx: float, sy: float) -> np.ndarray:
    K = np.array(K, float)
    K[0] *= sx
    K[1] *= sy
    return K


def to_tensor(frames) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


# Cube faces as camera-to-world rotations (OpenCV axes: right, down, forward): +x, -x, +y, -y, up, down.
def _face(forward, right) -> np.ndarray:
    f, r = np.array(forward, float), np.array(right, float)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2] = r, np.cross(f, r), f
    return c2w


CUBE = np.stack([_face((1, 0, 0), (0, -1, 0)), _face((-1, 0, 0), (0, 1, 0)), _face((0, 1, 0), (1, 0, 0)),
                 _face((0, -1, 0), (-1, 0, 0)), _face((0, 0, 1), (1, 0, 0)), _face((0, 0, -1), (1, 0, 0))])


def _translation(xyz) -> np.ndarray:
    t = np.zeros((len(xyz), 4, 4))
    t[:, :3, 3] = xyz
    return t


def _cube_to_views(faces: torch.Tensor, rotations: np.ndarray, K, width, height, size) -> torch.Tensor:
    """Pinhole views (P, V, 3, h, w) sampled from cube maps faces (P, 6, 3, S, S) for V camera rotations."""
    w, h = size
    Ks = _scaled_K(K, w / width, h / height)
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rays = np.stack([(u - Ks[0, 2]) / Ks[0, 0], (v - Ks[1, 2]) / Ks[1, 1], np.ones_like(u)], -1)  # (h, w, 3)
    d = np.einsum("vij,hwj->vhwi", rotations, rays)  # world directions (V, h, w, 3)
    local = np.einsum("fji,vhwj->fvhwi", CUBE[:, :3, :3], d)  # in each face's camera frame (6, V, h, w, 3)
    face = local[..., 2].argmax(0)  # the face a ray leaves the cube through
    P, V = faces.shape[0], len(rotations)
    out = torch.empty((P, 3, V * h * w))
    face, local = face.reshape(-1), local.reshape(6, -1, 3)
    for f in range(6):  # each pixel sampled from its own face only (a bilinear sample does not depend on the others)
        idx = np.nonzero(face == f)[0]
        if not len(idx):
            continue
        lf = local[f, idx]
        z = np.maximum(lf[:, 2], 1e-6)
        g = torch.from_numpy(np.stack([lf[:, 0] / z, lf[:, 1] / z], -1).reshape(1, 1, len(idx), 2)).float()
        out[:, :, torch.from_numpy(idx)] = F.grid_sample(faces[:, f], g.expand(P, -1, -1, -1), mode="bilinear",
                                                          padding_mode="border", align_corners=False)[:, :, 0]
    return out.view(P, 3, V, h, w).permute(0, 2, 1, 3, 4)


def blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 box blur over the last two axes: the coarse match should forgive a pixel of misalignment."""
    shape = x.shape
    x = x.reshape(-1, 1, *shape[-2:])
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1).view(shape)


def _degrade_fn(degrade):
    """None, a frames -> frames function, or a LatentCodec (each frame encoded and decoded alone: a codec's first
    latent holds one frame, so a single frame passes through the codec's spatial compression only; None for a
    codec with judge_round_trip False: its round trip is too costly per render, plain renders are compared)."""
    if degrade is None or not hasattr(degrade, "encode"):
        return degrade
    if not getattr(degrade, "judge_round_trip", True):
        return None
    from .codec import frames_to_video, video_to_frames

    def through_codec(frames, chunk: int = 16):
        # `chunk` frames at a time: the library holds hundreds of views, and Wan2.2's VAE at 416x256 needs GiBs
        # per frame batch (all at once ran out of memory on an H200 beside the 5B model)
        with torch.no_grad():
            video = frames_to_video(frames).permute(2, 1, 0, 3, 4)  # (N, 3, 1, H, W): every frame a clip of one
            return np.concatenate([video_to_frames(degrade.decode(degrade.encode(video[i:i + chunk])))[:, 0]
                                   for i in range(0, len(video), chunk)])
    return through_codec


def compared_through(codec) -> str:
    """What a results file says about the renders the judge compared (evaluate_videos' notes)."""
    name = "none" if codec is None else type(codec).__name__
    skip = codec is not None and not codec.judge_round_trip  # too costly per render: plain renders stand in (codec.py)
    return f"renders compared through: {f'none ({name} round trip skipped: judge_round_trip)' if skip else name}"

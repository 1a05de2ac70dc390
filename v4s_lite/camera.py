"""Pinhole cameras (notebook 01): OpenCV convention (x right, y down, z forward), camera-to-world poses `c2w`
(4, 4), intrinsics K (3, 3). Pure numpy; nothing here knows about rooms beyond an object's corners.

    K = intrinsics(104, 64)
    c2w = look_at(eye=[1, 1, 1.5], target=[3, 2, 0.5])
"""
from __future__ import annotations

import math

import numpy as np

from .scene import SceneObject
from .utils import V4SError

# ---------------------------------------------------------------------------------------------------------
# Cameras


def intrinsics(width: int, height: int, fov_deg: float = 70.0) -> np.ndarray:
    """Pinhole K for a horizontal field of view; square pixels, principal point at the image centre."""
    if width <= 0 or height <= 0 or not 0 < fov_deg < 180:
        raise V4SError(f"intrinsics({width}, {height}, fov_deg={fov_deg}): need positive sizes and 0 < fov < 180")
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def pose_from_yaw_pitch(eye, yaw: float, pitch: float) -> np.ndarray:
    """c2w for a camera at eye looking along heading yaw (radians, from +x towards +y) tilted by pitch (up > 0)."""
    f = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    return _frame(np.asarray(eye, float), f)


def _frame(eye: np.ndarray, forward: np.ndarray) -> np.ndarray:
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 0.0, 1.0])
    n = np.linalg.norm(right)
    if n < 1e-6:
        raise V4SError("look direction is vertical: the camera's roll is undefined; look at a point off the vertical")
    right /= n
    down = np.cross(f, right)  # OpenCV: y = z x x
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, f, eye
    return c2w


def look_at(eye, target) -> np.ndarray:
    """Camera-to-world pose (4, 4) at eye looking at target, no roll (the image's x axis stays horizontal)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    if np.allclose(eye, target):
        raise V4SError("look_at: eye and target are the same point")
    return _frame(eye, target - eye)


def yaw_pitch(c2w) -> tuple[float, float]:
    """Heading and tilt of a roll-free pose (inverse of pose_from_yaw_pitch)."""
    f = np.asarray(c2w, float)[:3, 2]
    return math.atan2(f[1], f[0]), math.asin(float(np.clip(f[2], -1, 1)))


def project(points, c2w, K) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixel coordinates uv (N, 2) and depth along the camera's z (N,).

    Pixel (i, j) covers [i, i+1) x [j, j+1), so a point projecting to u = 10.3 lies in column 10. Points behind
    the camera get depth <= 0 (their uv is meaningless).
    """
    points = np.asarray(points, float).reshape(-1, 3)
    c2w, K = np.asarray(c2w, float), np.asarray(K, float)
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.diag(K)[:2] + K[:2, 2]
    return uv, z


def projected_box(obj: SceneObject, c2w, K, width: int, height: int):
    """The image box (x0, y0, x1, y1) of the object's projected 3D bounding box, clipped; None if off screen."""
    uv, z = project(obj.corners(), c2w, K)
    if (z <= 1e-6).any():
        return None
    x0, y0 = np.clip(uv.min(0), 0, [width, height])
    x1, y1 = np.clip(uv.max(0), 0, [width, height])
    return None if x1 <= x0 or y1 <= y0 else np.array([x0, y0, x1, y1])

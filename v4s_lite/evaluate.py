"""Ground-truth evaluation: recover the camera of every generated frame in the known room, then score it.

The paper scores videos through estimated reconstructions and a judge. Our rooms are known exactly, so every
number here is checkable:

1. Pose estimation by render-and-compare (`PoseEstimator`): match each frame against a library of low-resolution
   renders on a grid of positions x headings x tilts (one matrix of L1 distances), then refine the best candidates
   by Levenberg-Marquardt over (x, y, yaw, pitch) at 26x16, then at 52x32. The residual (mean absolute pixel
   difference of the best render, in [0, 1]) says how well the room explains the frame.
2. Metrics (`score_clip`), at the estimated poses:
   - SD  = |p - c_target| / room diagonal, p = the scene point the view grounds: under the centre of the detected
           red box, on the object the box frames (`grounded_pixel`), or under the image centre when no box is
           found; c_target = the target's 3D centre. Median over the box frames.
   - IF  = p lies on the target (instance buffer) and the target is visible; IF@0.2 = IF and SD < 0.2,
           IF@0.1 = IF and SD < 0.1 (the paper's IF(SD<0.2), IF(SD<0.1)).
   - box_IoU: the detected box against the target's box in the instance buffer (0 when no box is found).
   - PSNR = 10 log10(1 / MSE), SSIM (Wang et al. 2004, 11-px Gaussian window): every frame against the room
           re-rendered at its estimated pose: does the video agree with the room's real geometry?
   - GT_PSNR, GT_SSIM (navigation): against the ground-truth frames of the commanded trajectory;
     pose_err_m, pose_err_deg: estimated poses against the clip's ground-truth trajectory.
   - DD (dynamic degree) = 1 when the estimated camera moves at least 0.3 m or turns at least 20 degrees over
     the clip, else 0; its mean is the share of dynamic videos (a frozen video gets 0).
3. `v4s eval --videos DIR --out OUT` scores clip folders laid out as the dataset, the video to score being each
   folder's `target.mp4` (so another model's videos are scored by writing them there), and `v4s eval
   --checkpoint CKPT --data DIR --out OUT` generates those folders first (OUT/videos/) and then scores them.
   Writes OUT/metrics.json (per clip, means with 95% bootstrap intervals), OUT/metrics.md and OUT/figures/.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .bbox import bbox_frames, box_iou, detect_red_box, red_box_mask
from .utils import V4SError

METRIC_KEYS = ("SD", "IF", "IF@0.2", "IF@0.1", "box_IoU", "PSNR", "SSIM", "DD")
EXTRA_KEYS = ("GT_PSNR", "GT_SSIM", "pose_err_m", "pose_err_deg", "residual", "jump_m")
DD_MIN_PATH_M, DD_MIN_TURN_DEG = 0.3, 20.0
MIN_TARGET_PIXELS = 0.002  # the target counts as visible when it covers at least 0.2% of the frame


# ------------------------------------------------------------------------------------------ poses
def _pose_params(c2w) -> np.ndarray:
    """(N, 4, 4) roll-free poses -> (N, 5) [x, y, z, yaw, pitch] (radians)."""
    c2w = np.asarray(c2w, float).reshape(-1, 4, 4)
    f = c2w[:, :3, 2]
    return np.stack([c2w[:, 0, 3], c2w[:, 1, 3], c2w[:, 2, 3], np.arctan2(f[:, 1], f[:, 0]),
                     np.arcsin(np.clip(f[:, 2], -1, 1))], -1)


def _pose_matrices(p) -> np.ndarray:
    """(N, 5) [x, y, z, yaw, pitch] -> (N, 4, 4) c2w, OpenCV camera axes, no roll (world.pose_from_yaw_pitch)."""
    p = np.asarray(p, float).reshape(-1, 5)
    cy, sy, cp, sp = np.cos(p[:, 3]), np.sin(p[:, 3]), np.cos(p[:, 4]), np.sin(p[:, 4])
    fwd = np.stack([cp * cy, cp * sy, sp], -1)
    right = np.stack([sy, -cy, np.zeros_like(cy)], -1)  # forward x up, normalised (|forward_xy| = cp > 0)
    down = np.cross(fwd, right)
    c2w = np.tile(np.eye(4), (len(p), 1, 1))
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, fwd, p[:, :3]
    return c2w


def pose_errors(c2w_est, c2w_true) -> tuple[np.ndarray, np.ndarray]:
    """Position error (m) and rotation angle between the two camera orientations (degrees), per frame."""
    a, b = np.asarray(c2w_est, float).reshape(-1, 4, 4), np.asarray(c2w_true, float).reshape(-1, 4, 4)
    pos = np.linalg.norm(a[:, :3, 3] - b[:, :3, 3], axis=-1)
    cos = (np.einsum("nij,nij->n", a[:, :3, :3], b[:, :3, :3]) - 1) / 2  # trace(Ra^T Rb) = sum of products
    return pos, np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _scaled_K(K, sx: float, sy: float) -> np.ndarray:
    K = np.array(K, float)
    K[0] *= sx
    K[1] *= sy
    return K


def _to_tensor(frames) -> torch.Tensor:
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
    out = torch.zeros((P, 3, V * h, w))
    for f in range(6):
        z = np.maximum(local[f, ..., 2], 1e-6)
        g = torch.from_numpy(np.stack([local[f, ..., 0] / z, local[f, ..., 1] / z], -1).reshape(1, V * h, w, 2)).float()
        m = torch.from_numpy(face == f).reshape(1, 1, V * h, w).float()
        out += m * F.grid_sample(faces[:, f], g.expand(P, -1, -1, -1), mode="bilinear", padding_mode="border",
                                 align_corners=False)
    return out.view(P, 3, V, h, w).permute(0, 2, 1, 3, 4)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 box blur over the last two axes: the coarse match should forgive a pixel of misalignment."""
    shape = x.shape
    x = x.reshape(-1, 1, *shape[-2:])
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1).view(shape)


@dataclass
class PoseEstimate:
    c2w: np.ndarray  # (N, 4, 4) estimated camera-to-world poses
    residual: np.ndarray  # (N,) mean absolute pixel difference of the best render at the refine size, in [0, 1]


class PoseEstimator:
    """Render-and-compare camera poses in a known scene (one estimator per scene; its render library is reused).

    coarse: (width, height) of the library renders; refine: the size of the final Levenberg-Marquardt. grid_step (m),
    n_yaw and pitches_deg span the library (cameras at eye height `z`); iterations of the final refinement;
    top_k coarse candidates are refined per frame (three times as many for the final view).
    """

    def __init__(self, scene, K, width: int, height: int, coarse=(26, 16), refine=(52, 32), grid_step: float = 0.5,
                 n_yaw: int = 24, pitches_deg=(-30.0, -18.0, -6.0), z: float | None = None, iterations: int = 8,
                 top_k: int = 5, cube_size: int = 32, fit_height: bool = False, still: float = 0.004):
        from .scene import EYE_HEIGHT

        self.scene, self.K, self.width, self.height = scene, np.asarray(K, float), int(width), int(height)
        self.coarse, self.refine = tuple(coarse), tuple(refine)
        self.grid_step, self.n_yaw, self.pitches = grid_step, n_yaw, tuple(pitches_deg)
        self.z = EYE_HEIGHT if z is None else z
        self.iterations, self.top_k, self.cube_size, self.fit_height = iterations, top_k, cube_size, fit_height
        self.still = still
        self._library = None
        self._mask = None

    # The library: a cube map rendered at every grid position (6 small renders), warped to every heading and tilt
    # by grid_sample: 6 renders per position instead of n_yaw x n_pitch.
    def library(self):
        if self._library is None:
            from .render import render
            from .camera import intrinsics
            from .scene import is_free

            W, D, _ = self.scene.room
            s = self.grid_step
            xs, ys = np.meshgrid(np.arange(s / 2, W, s), np.arange(s / 2, D, s), indexing="ij")
            xy = np.stack([xs.ravel(), ys.ravel()], -1)
            xy = xy[is_free(self.scene, xy, clearance=0.1)]
            if not len(xy):
                raise V4SError("the room has no free floor to place library cameras; use a smaller grid_step")
            S = self.cube_size
            faces = render(self.scene, (CUBE[None] + 0 * xy[:, None, None, None, 0]).reshape(-1, 4, 4)
                           + _translation(np.repeat(np.c_[xy, np.full(len(xy), self.z)], 6, 0)),
                           intrinsics(S, S, 90.0), S, S, antialias=1)
            faces = _to_tensor(faces.rgb).view(len(xy), 6, 3, S, S)
            yaw = np.linspace(-np.pi, np.pi, self.n_yaw, endpoint=False)
            pitch = np.radians(self.pitches)
            views = np.array([[0, 0, 0, a, p] for a in yaw for p in pitch])
            imgs = _blur(_cube_to_views(faces, _pose_matrices(views)[:, :3, :3], self.K, self.width, self.height,
                                        self.coarse))  # (P, V, 3, h, w)
            grid = np.array([[x, y, self.z, a, p] for x, y in xy for _, _, _, a, p in views])
            self._library = (grid, imgs.flatten(2).flatten(0, 1))
        return self._library

    def _clamp(self, params) -> np.ndarray:
        """Keep cameras inside the room (a camera outside sees the back of the walls) and tilts sensible."""
        W, D, H = self.scene.room
        lo = np.array([0.05, 0.05, 0.2, -np.inf, -1.2])
        hi = np.array([W - 0.05, D - 0.05, H - 0.2, np.inf, 1.2])
        return np.clip(params, lo, hi)

    def _render(self, params, size, antialias: int = 1) -> torch.Tensor:
        from .render import render

        w, h = size
        K = _scaled_K(self.K, w / self.width, h / self.height)
        out = render(self.scene, _pose_matrices(self._clamp(params)), K, w, h, antialias=antialias)
        return _to_tensor(out.rgb)

    def _prepare(self, frames, size):
        """Frames area-averaged to `size` and a weight per pixel (0 on the red box, which the room does not have)."""
        w, h = size
        x = F.interpolate(_to_tensor(frames), size=(h, w), mode="area")
        if self._mask is None or len(self._mask) != len(frames):
            self._mask = red_box_mask(frames)
        keep = 1.0 - F.interpolate(torch.from_numpy(self._mask).float()[:, None], size=(h, w), mode="area")
        return x, (keep > 0.99).float()

    @staticmethod
    def _l1(a, b, weight):
        """Weighted mean |a - b| per image: a, b (N, 3, h, w), weight (N, 1, h, w)."""
        return ((a - b).abs() * weight).sum((1, 2, 3)) / (3 * weight.sum((1, 2, 3))).clamp(min=1)

    def estimate(self, frames, n_final: int = 0) -> PoseEstimate:
        """Poses of uint8 frames (N, H, W, 3). The final view decides SD / IF, so the frame where the camera stops
        (the one before the last `n_final`) and the last frame get three times the coarse candidates."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise V4SError(f"frames must be uint8 (N, {self.height}, {self.width}, 3) like the clip; got "
                           f"{frames.dtype} {frames.shape}")
        # A still camera (a frozen video, the box frames) is estimated once: a frame that differs from the previous
        # kept frame by less than `still` (mean absolute difference, codec noise) shares its pose.
        x = frames.astype(np.float32)
        keep, owner = [0], [0]
        for i in range(1, len(frames)):
            if np.abs(x[i] - x[keep[-1]]).mean() / 255 >= self.still:
                keep.append(i)
            owner.append(len(keep) - 1)
        est = self._estimate(frames[keep], n_final=len(keep) - owner[len(frames) - n_final - 1] if n_final else 0)
        return PoseEstimate(est.c2w[owner], est.residual[owner])

    def _estimate(self, frames, n_final: int = 0) -> PoseEstimate:
        n = len(frames)
        self._mask = red_box_mask(frames)
        grid, lib = self.library()
        # 1. Coarse: L1 distance of every (blurred) frame to every library view; keep the top_k poses per frame.
        coarse, w_coarse = self._prepare(frames, self.coarse)
        coarse = _blur(coarse)
        cand, owner = [], []
        for i in range(n):
            wi = w_coarse[i].expand(3, -1, -1).flatten()
            d = ((lib - coarse[i].flatten()).abs() * wi).sum(1) / (wi.sum() + 1e-6)
            k = self.top_k * (3 if i in (n - n_final, n - 1) else 1)  # the final view decides SD / IF: look harder
            cand.append(grid[torch.topk(-d, k).indices.numpy()])
            owner += [i] * k
        cand, owner = np.concatenate(cand), np.array(owner)
        # 2. Refine every candidate at the coarse size (a wide basin), keep the best one per frame.
        hz = 0.03 if self.fit_height else 0.0  # our cameras walk at eye height: by default z stays fixed
        cand = self._levenberg_marquardt(cand, coarse[owner], w_coarse[owner], self.coarse, 4,
                                         h=(0.1, 0.1, 2 * hz, 0.04, 0.04))
        res = self._residuals(cand[:, None], coarse[owner], w_coarse[owner], self.coarse, True)[:, 0]
        best = np.stack([cand[owner == i][np.argmin(res[owner == i])] for i in range(n)])
        # 3. At the refine size, twice: try the neighbours' poses too (a video is smooth: a frame stuck in a wrong
        #    valley is pulled out by its neighbour's pose), then Levenberg-Marquardt again.
        target, weight = self._prepare(frames, self.refine)
        for rounds in (self.iterations - self.iterations // 2, self.iterations // 2):
            neigh = np.stack([best[np.clip(np.arange(n) + o, 0, n - 1)] for o in (0, -1, 1)], 1)
            r = self._residuals(neigh, target, weight, self.refine, True)
            best = neigh[np.arange(n), r.argmin(1)]
            best = self._levenberg_marquardt(best, target, weight, self.refine, rounds, h=(0.05, 0.05, hz, 0.02, 0.02))
        res = self._residuals(best[:, None], target, weight, self.refine)[:, 0]
        return PoseEstimate(_pose_matrices(best), res)

    def _levenberg_marquardt(self, p, target, weight, size, iterations, antialias=2, h=(0.05, 0.05, 0.03, 0.02, 0.02)):
        """Gauss-Newton steps on the blurred image difference, Jacobian by finite differences (5 renders a frame),
        damped by lambda (Levenberg-Marquardt): it follows the valleys where moving forward and tilting trade off."""
        n = len(p)
        h = np.asarray(h, float)  # finite-difference steps: m, m, m, rad, rad
        tb, wb = _blur(target), weight
        lam = np.full(n, 1e-2)

        def resid(params):  # (n, k, 5) -> (n, k, M) weighted differences
            k = params.shape[1]
            imgs = _blur(self._render(params.reshape(-1, 5), size, antialias)).view(n, k, -1)
            return ((imgs - tb.flatten(1)[:, None]) * wb.expand(-1, 3, -1, -1).flatten(1)[:, None]).double()

        r0 = resid(p[:, None])[:, 0]
        cost = (r0 ** 2).sum(1).numpy()
        for _ in range(iterations):
            dims = np.nonzero(h)[0]  # h = 0 holds a parameter fixed (the eye height, by default)
            rp = resid(p[:, None] + np.eye(5)[dims][None] * h[None, dims, None])  # (n, d, M)
            J = ((rp - r0[:, None]) / torch.from_numpy(h[dims])[None, :, None]).transpose(1, 2)  # (n, M, d)
            A = J.transpose(1, 2) @ J
            g = J.transpose(1, 2) @ r0[..., None]
            A = A + torch.from_numpy(lam)[:, None, None] * torch.diag_embed(torch.diagonal(A, dim1=1, dim2=2) + 1e-9)
            delta = np.zeros_like(p)
            delta[:, dims] = -torch.linalg.solve(A, g)[..., 0].numpy()
            delta = np.clip(delta, -np.array([0.3, 0.3, 0.1, 0.2, 0.2]), np.array([0.3, 0.3, 0.1, 0.2, 0.2]))
            r1 = resid(self._clamp(p + delta)[:, None])[:, 0]
            c1 = (r1 ** 2).sum(1).numpy()
            ok = c1 < cost
            p = np.where(ok[:, None], self._clamp(p + delta), p)
            r0 = torch.where(torch.from_numpy(ok)[:, None], r1, r0)
            cost = np.where(ok, c1, cost)
            lam = np.where(ok, lam / 3, lam * 4)
        return p

    def _residuals(self, params, target, weight, size, blur=False) -> np.ndarray:
        n, k, _ = params.shape
        imgs = self._render(params.reshape(-1, 5), size)
        if blur:
            imgs = _blur(imgs)
            target = _blur(target)
        r = self._l1(imgs, target.repeat_interleave(k, 0), weight.repeat_interleave(k, 0))
        return r.view(n, k).numpy().astype(float)


# ------------------------------------------------------------------------------------------ image metrics
def psnr(a, b) -> np.ndarray:
    """PSNR in dB of uint8 images (N, H, W, 3) on the [0, 1] scale, per image (inf for identical images)."""
    mse = ((_to_tensor(a) - _to_tensor(b)) ** 2).mean((1, 2, 3)).double()
    return (10 * torch.log10(1.0 / mse)).numpy()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).float()


def ssim(a, b) -> np.ndarray:
    """SSIM (Wang et al. 2004: 11-px Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03) of uint8 images, per image,
    averaged over the colour channels and over the valid (unpadded) windows."""
    x, y = _to_tensor(a).double(), _to_tensor(b).double()
    g = _gaussian_window().double()
    c = x.shape[1]
    win = (g[:, None] * g[None, :]).expand(c, 1, -1, -1).contiguous()
    blur = lambda t: F.conv2d(t, win, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.mean((1, 2, 3)).numpy()


def lpips_status() -> tuple[bool, str]:
    """Whether LPIPS can run offline: the `lpips` package and its AlexNet weights must already be on disk."""
    import importlib.util

    if importlib.util.find_spec("lpips") is None:
        return False, "LPIPS skipped: the `lpips` package is not installed (pip install lpips, then fetch its weights once)"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(hub.glob("alexnet-owt-*.pth")):
        return False, f"LPIPS skipped: AlexNet weights are not in {hub} and nothing is downloaded during evaluation"
    return True, "LPIPS: AlexNet (lpips package)"


def lpips_distance(a, b) -> np.ndarray:
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False)
    with torch.no_grad():
        return net(_to_tensor(a) * 2 - 1, _to_tensor(b) * 2 - 1).flatten().numpy()


# ------------------------------------------------------------------------------------------ one clip
def dynamic_degree(c2w, n_moving: int | None = None) -> tuple[int, float, float]:
    """(DD, path length in m, turning in degrees) of the camera over the first n_moving frames."""
    p = _pose_params(c2w)[:n_moving]
    path = float(np.linalg.norm(np.diff(p[:, :3], axis=0), axis=1).sum())
    dyaw = (np.diff(p[:, 3]) + np.pi) % (2 * np.pi) - np.pi
    turn = float(np.degrees(np.abs(dyaw).sum() + np.abs(np.diff(p[:, 4])).sum()))
    return int(path >= DD_MIN_PATH_M or turn >= DD_MIN_TURN_DEG), path, turn


def grounded_pixel(instance: np.ndarray, box, min_iou: float = 0.25) -> tuple[int, int]:
    """The pixel a view grounds, on the instance buffer at the estimated pose.

    With a box: a box names the object it frames, so when some object's visible extent matches the box
    (IoU >= min_iou, the best one) the grounded pixel is that object's pixel nearest to the box centre (a thin lamp
    whose pole misses the centre by a pixel of pose error, or stands in front of a cabinet, is still the answer).
    Otherwise, and without a box: the pixel under the box centre (the image centre without a box), moved to the
    nearest object pixel inside the box (the middle half of the image without one) when it falls on the room.
    """
    from .render import boxes_from_instance

    h, w = instance.shape
    has_box = box is not None and not np.isnan(box).any()
    if not has_box:
        box = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4])
    u, v = int(np.clip((box[0] + box[2]) / 2, 0, w - 1)), int(np.clip((box[1] + box[3]) / 2, 0, h - 1))
    n = int(instance.max())
    if has_box and n > 0:
        extents, _ = boxes_from_instance(instance[None], n)
        iou = np.nan_to_num(box_iou(extents[0], np.asarray(box, float)[None]))
        if iou.max() >= min_iou:
            vs, us = np.nonzero(instance == int(np.argmax(iou)) + 1)
            j = int(np.argmin((us - u) ** 2 + (vs - v) ** 2))
            return int(us[j]), int(vs[j])
    if instance[v, u] != 0:
        return u, v
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(w, np.ceil(box[2]))), int(min(h, np.ceil(box[3])))
    vs, us = np.nonzero(instance[y0:y1, x0:x1])
    if not len(us):
        return u, v
    j = int(np.argmin((us + x0 - u) ** 2 + (vs + y0 - v) ** 2))
    return int(us[j] + x0), int(vs[j] + y0)


def spatial_distance(point, target_center, room) -> float:
    """SD: distance from the grounded scene point to the target's 3D centre, divided by the room's diagonal."""
    return float(np.linalg.norm(np.asarray(point, float) - np.asarray(target_center, float)) / np.linalg.norm(room))


def _unproject(u: int, v: int, depth: float, c2w, K) -> np.ndarray:
    ray = np.array([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], 1.0]) * depth
    return np.asarray(c2w)[:3, :3] @ ray + np.asarray(c2w)[:3, 3]


def _final_box(boxes: np.ndarray) -> np.ndarray | None:
    """The answer of the box frames: the median detected box (None when no frame shows one)."""
    b = boxes[~np.isnan(boxes).any(1)]
    return np.median(b, axis=0) if len(b) else None


def score_clip(meta: dict, frames, estimator: PoseEstimator | None = None, lpips: bool | None = None) -> dict:
    """All metrics of one video (uint8 (Nt, H, W, 3)) of the clip described by `meta` (a dataset meta.json).

    Returns the metrics (NaN where they do not apply: SD/IF/box for navigation, GT_* for grounding) plus what they
    were computed from: the estimated poses, residuals, the detected box and the grounded pixel.
    """
    from .config import ClipConfig
    from .data import validate_meta
    from .render import boxes_from_instance, render
    from .scene import Scene

    arrays = validate_meta(meta)
    if meta.get("scene") is None:
        raise V4SError("this clip has no scene recipe (meta['scene'] is null): ground-truth evaluation needs the room")
    scene = Scene.from_dict(meta["scene"])
    K, W, H = arrays["K"], meta["width"], meta["height"]
    frames = np.asarray(frames)
    n_t = len(arrays["target_frame_indices"])
    if frames.shape != (n_t, H, W, 3) or frames.dtype != np.uint8:
        raise V4SError(f"the video must be uint8 ({n_t}, {H}, {W}, 3) as meta.json describes; got {frames.dtype} "
                       f"{frames.shape}. Generate the clip's full target length at the clip's size.")
    n_box = ClipConfig(**meta["clip_config"]).box_frames
    estimator = estimator or PoseEstimator(scene, K, W, H)
    est = estimator.estimate(frames, n_final=n_box if meta["task"] == "grounding" else 0)
    view = render(scene, est.c2w, K, W, H, antialias=2)

    # Consistency with the room: the red box is the model's mark, not part of the room, so it does not count.
    boxes, conf = detect_red_box(frames)
    box_px = red_box_mask(frames, boxes)
    seen = np.where(box_px[..., None], view.rgb, frames)
    out = {"PSNR": float(np.mean(np.minimum(psnr(seen, view.rgb), 100.0))), "SSIM": float(np.mean(ssim(seen, view.rgb))),
           "residual": float(np.mean(est.residual))}
    pos_err, ang_err = pose_errors(est.c2w, arrays["target_c2w"])
    out["pose_err_m"], out["pose_err_deg"] = float(np.mean(pos_err)), float(np.mean(ang_err))
    out["DD"], out["path_m"], out["turn_deg"] = dynamic_degree(est.c2w, n_t - n_box if meta["task"] == "grounding" else None)
    out["jump_m"] = float(np.linalg.norm(np.diff(est.c2w[:, :3, 3], axis=0), axis=1).max())

    nan = float("nan")
    out.update({k: nan for k in ("SD", "IF", "IF@0.2", "IF@0.1", "box_IoU", "GT_PSNR", "GT_SSIM")})
    if meta["task"] == "grounding":
        target = scene.object(meta["target_id"])
        sd, hit = [], []
        for i in range(n_t - n_box, n_t):  # each final frame grounds its own point: its box, else its centre
            inst = view.instance[i]
            u, v = grounded_pixel(inst, boxes[i])
            p = _unproject(u, v, float(view.depth[i, v, u]), est.c2w[i], K)
            sd.append(spatial_distance(p, target.center, scene.room))
            hit.append(inst[v, u] == target.id and (inst == target.id).mean() >= MIN_TARGET_PIXELS)
        final = _final_box(boxes[-n_box:])
        proj, _ = boxes_from_instance(view.instance[-1:], len(scene.objects))
        iou = box_iou(final, proj[0, target.id - 1]) if final is not None else 0.0
        sd, if_ = float(np.median(sd)), float(np.mean(hit) >= 0.5)
        out.update({"SD": sd, "IF": if_, "IF@0.2": float(if_ and sd < 0.2), "IF@0.1": float(if_ and sd < 0.1),
                    "box_IoU": float(np.nan_to_num(iou))})
        out["box"] = None if final is None else [float(x) for x in final]
        out["box_confidence"] = float(np.median(conf[-n_box:]))
        out["residual_end"] = float(np.mean(est.residual[-n_box:]))  # how well the views that hold the answer fit the room
        out["grounded_pixel"] = [u, v]
    else:
        gt = render(scene, arrays["target_c2w"], K, W, H, antialias=2).rgb
        out["GT_PSNR"] = float(np.mean(np.minimum(psnr(frames, gt), 100.0)))
        out["GT_SSIM"] = float(np.mean(ssim(frames, gt)))
    use_lpips = lpips_status()[0] if lpips is None else lpips
    if use_lpips:
        out["LPIPS"] = float(np.mean(lpips_distance(seen, view.rgb)))
    out["c2w"] = est.c2w
    out["residuals"] = est.residual
    out["render"] = view.rgb
    return out


# ------------------------------------------------------------------------------------------ test videos
def ground_truth_video(meta: dict, with_box: bool = True, antialias: int = 2) -> np.ndarray:
    """The clip's target trajectory rendered, with the red box on the box frames (grounding): what a perfect
    model would generate. (target.mp4 in the dataset is stored without the box.)"""
    from .config import ClipConfig
    from .data import validate_meta
    from .render import render
    from .scene import Scene

    arrays = validate_meta(meta)
    frames = render(Scene.from_dict(meta["scene"]), arrays["target_c2w"], arrays["K"], meta["width"], meta["height"],
                    antialias=antialias).rgb
    if with_box and meta["task"] == "grounding":
        n_box = ClipConfig(**meta["clip_config"]).box_frames
        frames = bbox_frames(frames, arrays["target_boxes"][:, meta["target_id"] - 1], n_box)
    return frames


def approach_video(meta: dict, object_id: int, seed: int = 0) -> np.ndarray:
    """A perfect video for another instruction: the approach to `object_id`, boxed (for IF near 0 on this clip)."""
    from .config import ClipConfig
    from .render import boxes_from_instance, render
    from .scene import Scene
    from .trajectories import approach_trajectory

    scene, cfg = Scene.from_dict(meta["scene"]), ClipConfig(**meta["clip_config"])
    c2w = approach_trajectory(scene, object_id, cfg.target_frames, cfg.box_frames, seed)
    out = render(scene, c2w, np.asarray(meta["K"]), meta["width"], meta["height"], antialias=2)
    boxes, _ = boxes_from_instance(out.instance, len(scene.objects))
    return bbox_frames(out.rgb, boxes[:, object_id - 1], cfg.box_frames)


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


# ------------------------------------------------------------------------------------------ many clips
def bootstrap_ci(values, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaNs dropped)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    means = v[np.random.default_rng(seed).integers(0, len(v), (n, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def summarize(per_clip: dict) -> dict:
    """Means and 95% bootstrap intervals of every metric over the clips where it applies."""
    keys = [k for k in (*METRIC_KEYS, *EXTRA_KEYS, "LPIPS") if any(k in m for m in per_clip.values())]
    out = {}
    for k in keys:
        v = np.array([m.get(k, np.nan) for m in per_clip.values()], float)
        n = int((~np.isnan(v)).sum())
        out[k] = {"mean": float(np.nanmean(v)) if n else None, "ci95": list(bootstrap_ci(v)) if n else None, "n": n}
    out["n"] = len(per_clip)
    return out


# Choosing one of several tries without ground truth (the paper only reports "any try succeeds"): each rule is a
# sort key over one try's `score_clip` metrics; the try with the smallest key is chosen. None of them looks at the
# target: the box detector's confidence, and how well the generated views fit the room (the pose residual; in the
# synthetic world the room is known, with real scans it would be a reconstruction from the context video).
SELECTION_RULES = {
    "box confidence": lambda m: (-m["box_confidence"], m["residual"]),
    "pose residual": lambda m: m["residual"],
    "final-view residual": lambda m: m["residual_end"],
}


def repeated_sampling(per_try: dict, rules: dict = SELECTION_RULES, key: str = "IF@0.2") -> dict:
    """per_try: {clip: [metrics of try 1, try 2, ...]}. Returns {"n": [1..T], "any": [...], rule: [...]}: the mean
    of `key` over clips when any of the first n tries succeeds, and when each rule picks one of the first n."""
    n_tries = min(len(ms) for ms in per_try.values())
    out = {"n": list(range(1, n_tries + 1)),
           "any": [float(np.mean([max(m[key] for m in ms[:n]) for ms in per_try.values()])) for n in range(1, n_tries + 1)]}
    for name, rule in rules.items():
        out[name] = [float(np.mean([min(ms[:n], key=rule)[key] for ms in per_try.values()])) for n in range(1, n_tries + 1)]
    return out


TABLE_COLUMNS = [("SD", "SD ↓"), ("IF", "IF ↑"), ("IF@0.2", "IF(SD<0.2) ↑"), ("IF@0.1", "IF(SD<0.1) ↑"),
                 ("box_IoU", "box IoU ↑"), ("PSNR", "PSNR ↑"), ("SSIM", "SSIM ↑"), ("DD", "DD ↑")]


def markdown_table(rows: dict) -> str:
    """rows: method name -> summary (from `summarize`). Laid out like the paper's grounding table."""
    head = "| Method | " + " | ".join(t for _, t in TABLE_COLUMNS) + " | n |"
    lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for name, s in rows.items():
        cells = []
        for k, _ in TABLE_COLUMNS:
            m = s.get(k, {}).get("mean") if isinstance(s.get(k), dict) else None
            cells.append("-" if m is None or (isinstance(m, float) and math.isnan(m)) else f"{m:.3g}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s.get('n', 0)} |")
    return "\n".join(lines)


def _jsonable(m: dict) -> dict:
    skip = {"c2w", "residuals", "render"}
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items() if k not in skip}


def evaluate_videos(videos, out=None, video_name: str = "target.mp4", figures: bool = True, progress: bool = True) -> dict:
    """Score every clip folder under `videos` (dataset layout; the scored video is `video_name` in each folder).

    Writes out/metrics.json, out/metrics.md and out/figures/<clip>.png when `out` is given; returns the metrics.
    """
    from tqdm.auto import tqdm

    from .data import clip_folders, read_video

    folders = clip_folders(videos)
    if not folders:
        raise V4SError(f"{videos}: no clip folders (sub-folders with meta.json); lay videos out as the dataset")
    status, note = lpips_status()
    print(note)
    per_clip, estimators = {}, {}
    for folder in tqdm(folders, desc="v4s eval", unit="clip", disable=not progress):
        meta = json.loads((folder / "meta.json").read_text())
        video = folder / video_name
        if not video.is_file():
            raise V4SError(f"{video}: missing; every clip folder must hold the video to score as {video_name}")
        frames = read_video(video, expected_frames=len(meta["target"]["frame_indices"]))
        key = json.dumps(meta["scene"], sort_keys=True)  # clips of one room share the render library
        if key not in estimators:
            from .scene import Scene

            estimators = {key: PoseEstimator(Scene.from_dict(meta["scene"]), meta["K"], meta["width"], meta["height"])}
        m = score_clip(meta, frames, estimators[key], lpips=status)
        per_clip[folder.name] = m
        if out is not None and figures:
            import matplotlib.pyplot as plt

            fig = diagnostic_figure(meta, frames, m)
            (Path(out) / "figures").mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(out) / "figures" / f"{folder.name}.png", dpi=80)
            plt.close(fig)
    result = {"per_clip": {k: _jsonable(v) for k, v in per_clip.items()}, "summary": summarize(per_clip),
              "notes": [note, f"video scored: {video_name}"]}
    for k in METRIC_KEYS:  # the headline keys at the top level, as the issue asks
        result[k] = result["summary"].get(k, {"mean": None})
    result["n"] = len(per_clip)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1, allow_nan=False))
        (out / "metrics.md").write_text(markdown_table({Path(videos).name: result["summary"]}) + "\n\n" +
                                        "\n".join(result["notes"]) + "\n")
    return result


# ------------------------------------------------------------------------------------------ picture
def diagnostic_figure(meta: dict, frames, metrics: dict):
    """Generated last frame | the room re-rendered at its estimated pose | top-down map (the estimated path and
    the clip's ground-truth path, the target outlined)."""
    import matplotlib.pyplot as plt

    from .plotting import topdown_map
    from .scene import Scene

    scene = Scene.from_dict(meta["scene"])
    fig, ax = plt.subplots(1, 3, figsize=(9, 2.6), gridspec_kw={"width_ratios": [1.6, 1.6, 1.2]})
    ax[0].imshow(np.asarray(frames)[-1])
    ax[0].set_title("generated (last frame)", fontsize=8)
    ax[1].imshow(metrics["render"][-1])
    ax[1].set_title(f"re-rendered at estimated pose\nresidual {metrics['residuals'][-1]:.3f}", fontsize=8)
    for a in ax[:2]:
        a.axis("off")
    topdown_map(scene, {"ground truth": np.asarray(meta["target"]["c2w"], float), "estimated": metrics["c2w"]},
                target_id=meta.get("target_id"), ax=ax[2], every=4)
    ax[2].tick_params(labelsize=6)
    sd = metrics.get("SD")
    ax[2].set_title("top-down" + ("" if sd is None or np.isnan(sd) else f"  SD {sd:.3f}  IF {metrics['IF']:.0f}"),
                    fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ command line
def generate_videos(checkpoint, data, out, clip_config=None, seed: int = 0, device="cpu", **generate_kw) -> Path:
    """Generate each clip's target video with a trained model (v4s_lite.sample) into out/<clip>/ (dataset layout,
    the generated video as target.mp4), ready for `evaluate_videos`."""
    from .config import get_clip_config
    from .data import ClipDataset, write_video
    from .checkpoints import load_model
    from .sample import sample_clip

    model, codec, text_encoder, cfg = load_model(checkpoint, device=device)
    clip_cfg = get_clip_config(clip_config or (cfg.clip if cfg else "lite"))
    ds = ClipDataset(data, clip_cfg, seed=seed)
    out = Path(out)
    for i, folder in enumerate(ds.folders):
        sample = sample_clip(model, codec, text_encoder, ds[i], clip_cfg, seed=seed, device=device, **generate_kw)[0]
        dest = out / folder.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("meta.json", "context.mp4"):
            shutil.copyfile(folder / name, dest / name)
        write_video(dest / "target.mp4", sample.frames, clip_cfg.fps)
    return out


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score videos against the known rooms: poses, SD / IF, PSNR / SSIM, DD",
                              description="Score generated videos by render-and-compare against the true rooms.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", help="clip folders laid out as the dataset; the video scored is each folder's "
                                      "target.mp4 (or --video-name)")
    src.add_argument("--checkpoint", help="a trained checkpoint: generate each clip of --data, then score")
    src.add_argument("--runs", help="training runs (RUNS/lite and the ablation runs beside it): every condition of "
                                    "the paper's tables (notebook 09) on the held-out clips of --data")
    p.add_argument("--data", help="with --checkpoint: the clip folders to generate for; with --runs: the folder "
                                  "holding heldout/, ood/ and nav/")
    p.add_argument("--out", required=True, help="output folder: metrics.json, metrics.md, figures/ (with --runs: "
                                                "the results file, e.g. results/lite_tables.json)")
    p.add_argument("--video-name", default="target.mp4", help="the file scored in each clip folder (default target.mp4)")
    p.add_argument("--clip-config", default=None, help="with --checkpoint: quick | lite | paper (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20, help="with --checkpoint: sampling steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-figures", action="store_true", help="skip the per-clip diagnostic pictures")
    tables = p.add_argument_group("with --runs (v4s_lite.tables)")
    tables.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU core)")
    tables.add_argument("--only", nargs="+", help="condition names to run; the others in --out are kept")
    tables.add_argument("--deadline", type=float, default=0, help="seconds: stop and write what is done by then")
    tables.add_argument("--max-clips", type=int, default=0, help="at most this many clips per condition")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    from .utils import get_device

    if args.runs:
        import shlex

        from .tables import paper_tables

        if not args.data:
            raise V4SError("--runs needs --data DIR: the folder holding the held-out clips (heldout/, ood/, nav/)")
        paper_tables(args.runs, args.data, args.out, str(get_device(args.device)), args.workers, args.only,
                     args.seed, args.deadline, args.max_clips, command=shlex.join(["v4s", *getattr(args, "argv", [])]))
        return 0
    videos, name = args.videos, args.video_name
    if args.checkpoint:
        if not args.data:
            raise V4SError("--checkpoint needs --data DIR: the clips to generate videos for")
        videos = generate_videos(args.checkpoint, args.data, Path(args.out) / "videos", args.clip_config, args.seed,
                                 get_device(args.device), steps=args.steps)
        name = "target.mp4"
    result = evaluate_videos(videos, args.out, video_name=name, figures=not args.no_figures)
    label = Path(args.checkpoint).name if args.checkpoint else Path(videos).name
    print(markdown_table({label: result["summary"]}))
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


# ----------------------------------------------------------------------------------- does the model listen?
CONDITION_PROBES = ("true", "other instruction", "null instruction", "other room's context", "noise context")


@torch.no_grad()
def condition_gaps(model, items, null_text, sigmas=(0.3, 0.5, 0.7, 0.9), seed: int = 0, device="cpu") -> dict:
    """How much each condition helps the model denoise: its flow-matching loss on held-out encoded clips
    (`train.encode_clips` items) with the true conditions, and with each condition replaced.

    A model that uses the instruction denoises worse with another clip's instruction; one that uses the room
    denoises worse with another room's context. A gap near 0 means that condition is ignored: the paper's
    "weak context" failure, measured in seconds on a CPU instead of by sampling and scoring videos.
    Same noise and sigma for every probe of a clip (paired), so the gaps are not noise. Needs >= 2 items.
    Returns {probe: mean loss} and {probe + " gap": mean (loss - true loss) / true loss}.
    """
    from .rope import context_positions
    from .train import _pad_text, add_noise, flow_target

    if len(items) < 2:
        raise V4SError("condition_gaps needs at least 2 clips: the 'other' probes borrow the next clip's conditions")
    losses = {p: [] for p in CONDITION_PROBES}
    g = torch.Generator().manual_seed(seed)
    for i, it in enumerate(items):
        other = items[(i + 1) % len(items)]
        tgt = it["target_latents"].float()[None]
        x0, first = tgt[:, :, 1:], tgt[:, :, :1]
        ctx = it["context_latents"].float()[None]
        pos = context_positions(torch.as_tensor(it["context_frame_indices"]).tolist())
        probes = {"true": (it["prompt_embeds"], ctx), "other instruction": (other["prompt_embeds"], ctx),
                  "null instruction": (null_text, ctx),
                  "other room's context": (it["prompt_embeds"], other["context_latents"].float()[None]),
                  "noise context": (it["prompt_embeds"], torch.randn(ctx.shape, generator=g))}
        if probes["other room's context"][1].shape != ctx.shape:
            raise V4SError("condition_gaps needs clips of one clip config (the context shapes differ)")
        names = list(probes)
        text = _pad_text([torch.as_tensor(t).float() for t, _ in probes.values()]).to(device)
        ctxs = torch.cat([c for _, c in probes.values()]).to(device)
        for s in sigmas:  # the five probes of one sigma are one batch: same noise, one forward
            noise = torch.randn(x0.shape, generator=g)
            xt, v = add_noise(x0, noise, torch.tensor([s])), flow_target(x0, noise)
            k = len(names)
            pred = model(ctxs, first.expand(k, -1, -1, -1, -1).to(device), xt.expand(k, -1, -1, -1, -1).to(device),
                         s * 1000.0, text, context_positions=pos)
            err = (pred.float().cpu() - v).square().flatten(1).mean(1)
            for name, e in zip(names, err.tolist()):
                losses[name].append(e)
    out = {p: float(np.mean(v)) for p, v in losses.items()}
    true = np.array(losses["true"])
    for p in CONDITION_PROBES[1:]:
        out[p + " gap"] = float(np.mean((np.array(losses[p]) - true) / true))
    return out

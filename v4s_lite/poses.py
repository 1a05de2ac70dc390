"""Camera poses of video frames in a known room, by render-and-compare (notebook 08).

Each frame is matched against a library of low-resolution renders on a grid of positions x headings x tilts (one
matrix of L1 distances), a shortlist of candidates is refined by Levenberg-Marquardt over (x, y, yaw, pitch), a path
through the best of them is chosen that does not teleport (a video is one camera moving), the poses are refined
again at a finer size, and a local search around each pose catches one stuck in the valley next to the right one.
The residual (mean absolute pixel difference of the best render, in [0, 1]) says how well the room explains the
frame: the judge (`evaluate`) treats frames the room cannot explain as failures, not as poses.

A video that went through a codec is blurred: `PoseEstimator(..., degrade=codec)` passes the renders through the
same codec before comparing, so a blurred frame is compared with an equally blurred render. A codec that shows one
picture per group of frames (the lite codec: their mean) is fitted as such: each picture by the mean of the renders
along the walk through it (`pose_math.codec_blend`), not by one pose that no single view matches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .bbox import red_box_mask
from .camera import intrinsics
# poses as five numbers and walks of them (pose_math), the pictures compared (pose_views): split out of this file;
# every name stays importable from here, where evaluate, notebook 08, tests and benchmarks find them
from .pose_math import (DD_MIN_PATH_M, DD_MIN_TURN_DEG, FREE_MOVE_M, FREE_TURN_RAD, TELEPORT_COST,  # noqa: F401
                        codec_aligned, codec_blend, dynamic_degree, pose_errors, pose_matrices, pose_params,
                        smooth_path)
from .pose_views import CUBE, _cube_to_views, _degrade_fn, _face, _scaled_K, _translation, blur, to_tensor  # noqa: F401
from .render import render, scene_tensors
from .scene import EYE_HEIGHT, is_free
from .utils import V4SError


@dataclass
class PoseEstimate:
    c2w: np.ndarray  # (N, 4, 4) estimated camera-to-world poses
    residual: np.ndarray  # (N,) mean absolute pixel difference of the best render at the refine size, in [0, 1]


# The local search's steps around a pose (`PoseEstimator._local_search`): 0.3 m along x and y, 0.25 rad (15 degrees) of
# heading and 0.15 rad of tilt, every combination (3^4 = 81, the pose itself included).
_s = np.array(np.meshgrid([-0.3, 0, 0.3], [-0.3, 0, 0.3], [-0.25, 0, 0.25], [-0.15, 0, 0.15], indexing="ij"))
LOCAL_STEPS = np.insert(_s.reshape(4, -1).T, 2, 0.0, axis=1)  # (81, 5): x, y, z (held), yaw, pitch
del _s


RENDER_MAX_RAYS_CPU, RENDER_MAX_RAYS_GPU = 1 << 17, 1 << 21  # rays a render chunk casts (`PoseEstimator._render`)
RENDER_CACHE_BYTES = 1 << 29  # 512 MiB of cached uint8 renders per estimator (a LITE clip through the codec: ~100 MiB)


class PoseEstimator:
    """Render-and-compare camera poses in a known scene (one estimator per scene; its render library is reused).

    coarse: (width, height) of the library renders; refine: the size of the final Levenberg-Marquardt. grid_step (m),
    n_yaw and pitches_deg span the library (cameras at eye height `z`; tilts down to -54 degrees, where a camera
    looks at a stool from close by); iterations of the final refinement; the `shortlist` best library views per
    frame are refined at the coarse size and the `top_k` best of them go on (three times as many for the final
    view; the right view can rank ~50th in the library at 26x16, so 5 straight from the library missed it). carry:
    every coarse candidate is compared again at the refine size (the right valley can rank second at 26x16).
    degrade: a latent codec (or any frames -> frames function) whose round trip the renders pass through before
    they are compared, for videos that went through it. blend: frames per codec picture (default the codec's
    `temporal_factor`; 1 for none): a picture spanning exactly one group is fitted by the mean of renders along the
    walk through it. local: a local search (LOCAL_STEPS) around every pose at the end. device: where the renders
    are cast ("cuda" makes scoring several times faster). speculate: each Levenberg-Marquardt iteration renders
    its trial poses and the finite differences around them in one call (half the sequential render calls, the
    same poses; False renders the differences once a step is accepted, the path before 2026-12-03b; default: on
    when device is not the CPU). shortlist=5, carry=False, blend=1, local=False is the
    estimator before 2026-12-03 (median pose error of the codec's ground truth 0.22 m on 8 validation rooms,
    0.10 m now, at ~5x the CPU time: results/judge_2026-12-03.md).
    """

    def __init__(self, scene, K, width: int, height: int, coarse=(26, 16), refine=(52, 32), grid_step: float = 0.5,
                 n_yaw: int = 24, pitches_deg=(-54.0, -42.0, -30.0, -18.0, -6.0), z: float | None = None,
                 iterations: int = 8, top_k: int = 5, shortlist: int = 20, cube_size: int = 32,
                 fit_height: bool = False, still: float = 0.004, degrade=None, blend: int | None = None,
                 local: bool = True, carry: bool = True, speculate: bool | None = None, device="cpu"):
        self.scene, self.K, self.width, self.height = scene, np.asarray(K, float), int(width), int(height)
        self.coarse, self.refine = tuple(coarse), tuple(refine)
        self.grid_step, self.n_yaw, self.pitches = grid_step, n_yaw, tuple(pitches_deg)
        self.z = EYE_HEIGHT if z is None else z
        self.iterations, self.top_k, self.cube_size, self.fit_height = iterations, top_k, cube_size, fit_height
        self.shortlist, self.blend_rounds, self.local, self.carry = shortlist, 2, local, carry
        self.still, self.device = still, str(device)
        # Levenberg-Marquardt: one render call an iteration, not two (same poses); by default off a CPU only, where
        # a render call costs its rays (5% more: the differences around rejected steps), not its kernel launches
        self.speculate = self.device != "cpu" if speculate is None else bool(speculate)
        self.degrade = _degrade_fn(degrade)
        # A codec that shows one picture per `temporal_factor` frames (the lite codec) decodes their mean: such a
        # picture is compared with the mean of the renders along the walk through it (`codec_blend`), not with one pose.
        through = degrade if self.degrade is not None else None  # a codec the judge skips (judge_round_trip) blends nothing
        self.blend = int(getattr(through, "temporal_factor", 1) if blend is None else blend)
        self._library = None
        self._mask = None
        self._renders = {}  # (w, h, antialias, K) -> {c2w bytes: uint8 render}, emptied by every `estimate`
        self._render_bytes = 0
        self._tensors = None

    # The library: a cube map rendered at every grid position (6 small renders), warped to every heading and tilt
    # by grid_sample (`pose_views._cube_to_views`): 6 renders per position instead of n_yaw x n_pitch.
    def library(self):
        if self._library is None:
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
                           intrinsics(S, S, 90.0), S, S, antialias=1, device=self.device, coverage=False,
                           tensors=self._scene_tensors())
            faces = to_tensor(faces.rgb).view(len(xy), 6, 3, S, S)
            yaw = np.linspace(-np.pi, np.pi, self.n_yaw, endpoint=False)
            pitch = np.radians(self.pitches)
            views = np.array([[0, 0, 0, a, p] for a in yaw for p in pitch])
            imgs = blur(_cube_to_views(faces, pose_matrices(views)[:, :3, :3], self.K, self.width, self.height,
                                       self.coarse))  # (P, V, 3, h, w)
            grid = np.concatenate([np.repeat(xy, len(views), 0), np.full((len(xy) * len(views), 1), float(self.z)),
                                   np.tile(views[:, 3:], (len(xy), 1))], 1)  # (x, y, z, yaw, pitch) per library view
            self._library = (grid, imgs.flatten(2).flatten(0, 1))
        return self._library

    def _scene_tensors(self):
        """The scene's primitive tables, built (and copied to the device) once per estimator, not per render."""
        if self._tensors is None:
            self._tensors = scene_tensors(self.scene, self.device)
        return self._tensors

    def _clamp(self, params) -> np.ndarray:
        """Keep cameras inside the room (a camera outside sees the back of the walls) and tilts sensible."""
        W, D, H = self.scene.room
        lo = np.array([0.05, 0.05, 0.2, -np.inf, -1.2])
        hi = np.array([W - 0.05, D - 0.05, H - 0.2, np.inf, 1.2])
        return np.clip(params, lo, hi)

    def render_view(self, params, size, antialias: int = 1) -> torch.Tensor:
        """The room seen from poses params (N, 5) [x, y, z, yaw, pitch] at size (w, h): float (N, 3, h, w) in
        [0, 1], through `degrade` when set (rendered at the video's size, degraded, then area-averaged)."""
        w, h = size
        c2w = pose_matrices(self._clamp(params))
        if self.degrade is None or tuple(size) != self.refine:  # the coarse stages compare blurred images anyway
            return to_tensor(self._render(c2w, _scaled_K(self.K, w / self.width, h / self.height), w, h, antialias))
        rgb = self._render(c2w, self.K, self.width, self.height, antialias)
        return F.interpolate(to_tensor(self.degrade(rgb)), size=(h, w), mode="area")

    def _render(self, c2w, K, w: int, h: int, antialias: int) -> np.ndarray:
        """uint8 renders (N, h, w, 3) of cameras c2w (N, 4, 4), each camera rendered once per `estimate`: the stages
        ask again for poses they rendered before (a pose Levenberg-Marquardt did not move gets the same finite
        differences, a neighbour's pose, the same pose in every member of a picture that is not blended). A render
        does not depend on the other cameras in its batch (`render`), so the cached one is the same picture."""
        if self._render_bytes > RENDER_CACHE_BYTES:
            self._renders, self._render_bytes = {}, 0  # a bound on memory (large videos, many workers): start again
        store = self._renders.setdefault((w, h, antialias, K.tobytes()), {})
        c2w = np.ascontiguousarray(c2w, dtype=float)
        keys = [c.tobytes() for c in c2w]
        miss = {}
        for i, k in enumerate(keys):
            if k not in store and k not in miss:
                miss[k] = i
        if miss:
            # On a CPU, ~2^17 rays at a time stay in cache (10-20% faster than render's default 2^19); on a GPU,
            # 2^21 (~0.7 GB at the peak): a chunk costs ~1000 small kernel launches whatever its size, and a codec
            # video's local search is 13M rays. The result does not depend on max_rays
            extra = {"max_rays": RENDER_MAX_RAYS_CPU if self.device == "cpu" else RENDER_MAX_RAYS_GPU}
            out = render(self.scene, c2w[list(miss.values())], K, w, h, antialias=antialias, device=self.device,
                         coverage=False, tensors=self._scene_tensors(), **extra).rgb
            store.update(zip(miss, out))
            self._render_bytes += out.nbytes
        return np.stack([store[k] for k in keys])

    def prepare(self, frames, size):
        """Frames area-averaged to `size` and a weight per pixel (0 on the red box, which the room does not have)."""
        w, h = size
        x = F.interpolate(to_tensor(frames), size=(h, w), mode="area")
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
        # A still camera (a frozen video, the box frames, the lite codec's 4 identical frames per latent) is
        # estimated once: a frame that differs from the previous kept frame by less than `still` (mean absolute
        # difference, codec noise) shares its pose.
        x = frames.astype(np.float32)
        keep, owner = [0], [0]
        for i in range(1, len(frames)):
            if np.abs(x[i] - x[keep[-1]]).mean() / 255 >= self.still:
                keep.append(i)
            owner.append(len(keep) - 1)
        spans = [(a, max(i for i, o in enumerate(owner) if o == j)) for j, a in enumerate(keep)]
        est = self._estimate(frames[keep], n_final=len(keep) - owner[len(frames) - n_final - 1] if n_final else 0,
                             spans=spans)
        return PoseEstimate(est.c2w[owner], est.residual[owner])


    def _views(self, params, size, antialias: int = 1, blend=None) -> torch.Tensor:
        """Renders (n, k, 3, h, w) of params (n, k, 5); with blend (`codec_blend`), each the mean of its members."""
        n, k, _ = params.shape
        w, h = size
        if blend is None:
            return self.render_view(params.reshape(-1, 5), size, antialias).view(n, k, 3, h, w)
        alpha, beta = blend
        T = alpha.shape[1]
        members = alpha[:, None, :, None] * params[:, :, None, :] + beta[:, None]
        return self.render_view(members.reshape(-1, 5), size, antialias).view(n, k, T, 3, h, w).mean(2)

    # long (~65 lines): the estimator's five stages (coarse library, refined shortlist, neighbours' poses, codec
    # groups, local search) numbered in order, so one reads how a pose is found top to bottom
    def _estimate(self, frames, n_final: int = 0, spans=None) -> PoseEstimate:
        n = len(frames)
        self._mask = red_box_mask(frames)
        self._renders, self._render_bytes = {}, 0
        grid, lib = self.library()
        # 1. Coarse: L1 distance of every (blurred) frame to every library view; keep the top_k poses per frame.
        coarse, w_coarse = self.prepare(frames, self.coarse)
        coarse = blur(coarse)
        cand, owner, keep = [], [], []
        diff = torch.empty_like(lib)  # |lib - frame| * weight in place: no library-sized temporaries, same numbers
        for i in range(n):
            wi = w_coarse[i].expand(3, -1, -1).flatten()
            torch.sub(lib, coarse[i].flatten(), out=diff)
            d = diff.abs_().mul_(wi).sum(1) / (wi.sum() + 1e-6)
            more = 3 if i in (n - n_final, n - 1) else 1  # the final view decides SD / IF: look harder
            k = max(self.shortlist, self.top_k) * more
            cand.append(grid[torch.topk(-d, k).indices.numpy()])
            owner += [i] * k
            keep.append(self.top_k * more)
        cand, owner = np.concatenate(cand), np.array(owner)
        # 2. Refine every shortlisted candidate at the coarse size (a wide basin), keep each frame's top_k by
        #    residual, then choose one per frame: the path through the candidates with the least residual plus a
        #    price on teleporting (Viterbi): a blurred frame whose best single match lies across the room is pulled
        #    back by its neighbours.
        hz = 0.03 if self.fit_height else 0.0  # our cameras walk at eye height: by default z stays fixed
        cand = self._levenberg_marquardt(cand, coarse[owner], w_coarse[owner], self.coarse, 4,
                                         h=(0.1, 0.1, 2 * hz, 0.04, 0.04))
        res = self._residuals(cand[:, None], coarse[owner], w_coarse[owner], self.coarse, True)[:, 0]
        best_k = np.concatenate([np.nonzero(owner == i)[0][np.argsort(res[owner == i])[:keep[i]]] for i in range(n)])
        cand, owner, res = cand[best_k], owner[best_k], res[best_k]
        best = smooth_path([cand[owner == i] for i in range(n)], [res[owner == i] for i in range(n)])
        # 3. At the refine size, twice: try the neighbours' poses too (a frame stuck in a wrong valley is pulled out
        #    by its neighbour's pose), and the first time every candidate of the coarse stage (the right valley can
        #    rank second at the coarse size and first here), then Levenberg-Marquardt again.
        target, weight = self.prepare(frames, self.refine)
        for first, rounds in ((True, self.iterations - self.iterations // 2), (False, self.iterations // 2)):
            neigh = np.stack([best[np.clip(np.arange(n) + o, 0, n - 1)] for o in (0, -1, 1)], 1)
            if first and self.carry:
                own = [cand[owner == i] for i in range(n)]
                width = max(len(c) for c in own)
                neigh = np.concatenate([neigh, np.stack([np.concatenate([c, np.repeat(c[:1], width - len(c), 0)])
                                                          for c in own])], 1)
            r = self._residuals(neigh, target, weight, self.refine, True)
            best = smooth_path(list(neigh), list(r))
            best = self._levenberg_marquardt(best, target, weight, self.refine, rounds, h=(0.05, 0.05, hz, 0.02, 0.02))
        # 4. Codec pictures that average a group of frames: each is fitted by the mean of the renders along the walk
        #    through it (neighbours held fixed, twice: their poses move too), trying the neighbours' poses first.
        blend = codec_blend(best, spans, self.blend)
        for _ in range(self.blend_rounds if blend is not None else 0):
            neigh = np.stack([best[np.clip(np.arange(n) + o, 0, n - 1)] for o in (0, -1, 1)], 1)
            r = self._residuals(neigh, target, weight, self.refine, True, blend=blend)
            best = neigh[np.arange(n), r.argmin(1)]
            blend = codec_blend(best, spans, self.blend)
            best = self._levenberg_marquardt(best, target, weight, self.refine, self.iterations // 2,
                                             h=(0.05, 0.05, hz, 0.02, 0.02), blend=blend)
            blend = codec_blend(best, spans, self.blend)
        # 5. A local search around each pose: the poses on a small grid of steps around it (LOCAL_STEPS) are
        #    compared, the best few refined again, the best kept: a frame stuck in a valley next to the right one
        #    (a step along the wall, a turn of 15 degrees) moves over.
        if self.local:
            best = self._local_search(best, target, weight, blend, hz)
        res = self._residuals(best[:, None], target, weight, self.refine, blend=blend)[:, 0]
        return PoseEstimate(pose_matrices(best), res)

    def _local_search(self, best, target, weight, blend, hz, keep: int = 3):
        n = len(best)
        starts = best[:, None] + LOCAL_STEPS[None]  # (n, S, 5)
        r = self._residuals(starts, target, weight, self.refine, True, blend=blend)
        top = np.argsort(r, 1)[:, :keep]
        cand = starts[np.arange(n)[:, None], top]  # (n, keep, 5)
        flat = self._levenberg_marquardt(cand.reshape(-1, 5), target.repeat_interleave(keep, 0),
                                         weight.repeat_interleave(keep, 0), self.refine, self.iterations // 2,
                                         h=(0.05, 0.05, hz, 0.02, 0.02),
                                         blend=None if blend is None else tuple(np.repeat(b, keep, 0) for b in blend))
        cand = np.concatenate([best[:, None], flat.reshape(n, keep, 5)], 1)
        r = self._residuals(cand, target, weight, self.refine, blend=blend)
        return cand[np.arange(n), r.argmin(1)]

    def _levenberg_marquardt(self, p, target, weight, size, iterations, antialias=2, h=(0.05, 0.05, 0.03, 0.02, 0.02),
                             blend=None):
        """Gauss-Newton steps on the blurred image difference, Jacobian by finite differences (5 renders a frame),
        damped by lambda (Levenberg-Marquardt): it follows the valleys where moving forward and tilting trade off."""
        n = len(p)
        h = np.asarray(h, float)  # finite-difference steps: m, m, m, rad, rad
        tb, wb = blur(target), weight
        lam = np.full(n, 1e-2)

        def resid(params):  # (n, k, 5) -> (n, k, M) weighted differences
            k = params.shape[1]
            imgs = blur(self._views(params, size, antialias, blend)).view(n, k, -1)
            return ((imgs - tb.flatten(1)[:, None]) * wb.expand(-1, 3, -1, -1).flatten(1)[:, None]).double()

        r0 = resid(p[:, None])[:, 0]
        cost = (r0 ** 2).sum(1).numpy()
        dims = np.nonzero(h)[0]  # h = 0 holds a parameter fixed (the eye height, by default)
        steps = np.eye(5)[dims][None] * h[None, dims, None]  # (1, d, 5) the finite-difference offsets
        rp = resid(p[:, None] + steps) if iterations else None  # (n, d, M)
        clip = np.array([0.3, 0.3, 0.1, 0.2, 0.2])
        for it in range(iterations):
            J = ((rp - r0[:, None]) / torch.from_numpy(h[dims])[None, :, None]).transpose(1, 2)  # (n, M, d)
            A = J.transpose(1, 2) @ J
            g = J.transpose(1, 2) @ r0[..., None]
            A = A + torch.from_numpy(lam)[:, None, None] * torch.diag_embed(torch.diagonal(A, dim1=1, dim2=2) + 1e-9)
            delta = np.zeros_like(p)
            delta[:, dims] = -torch.linalg.solve(A, g)[..., 0].numpy()
            q = self._clamp(p + np.clip(delta, -clip, clip))
            if self.speculate and it < iterations - 1:
                # the trial pose and the next iteration's finite differences around it in one batch (one render
                # call an iteration instead of two); a frame whose step is rejected keeps its old differences
                both = resid(np.concatenate([q[:, None], q[:, None] + steps], 1))
                r1, rq = both[:, 0], both[:, 1:]
            else:
                r1, rq = resid(q[:, None])[:, 0], None
            c1 = (r1 ** 2).sum(1).numpy()
            ok = c1 < cost
            p = np.where(ok[:, None], q, p)
            r0 = torch.where(torch.from_numpy(ok)[:, None], r1, r0)
            cost = np.where(ok, c1, cost)
            lam = np.where(ok, lam / 3, lam * 4)
            if it < iterations - 1:
                if rq is None:  # the path before 2026-12-03b: the differences around the new poses, rendered now
                    rp = resid(p[:, None] + steps)
                else:
                    rp = torch.where(torch.from_numpy(ok)[:, None, None], rq, rp)
        return p

    def _residuals(self, params, target, weight, size, blurred=False, blend=None) -> np.ndarray:
        n, k, _ = params.shape
        imgs = self._views(params, size, blend=blend).flatten(0, 1)
        if blurred:
            imgs = blur(imgs)
            target = blur(target)
        r = self._l1(imgs, target.repeat_interleave(k, 0), weight.repeat_interleave(k, 0))
        return r.view(n, k).numpy().astype(float)

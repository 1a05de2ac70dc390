"""A torch ray caster for the synthetic rooms: RGB, depth and instance ids, batched over cameras.

Every pixel casts one ray (pinhole, OpenCV axes, through the pixel centre); what a ray hits and the colour it
brings back are `raycast.py`'s (closed-form hits with the room and the objects' primitives, Lambert shading).
Here: which rays to cast and against which primitives. Two tricks keep it fast on a CPU:

  * culling: a primitive is only tested against the rays inside its projected bounding rectangle, so the
    work is "pixels covered", not "pixels x primitives";
  * adaptive anti-aliasing: pixels whose neighbours differ (an object edge, a texture seam) are re-cast with
    antialias x antialias sub-pixel rays and averaged; flat pixels keep their single ray.

Depth and instance ids come from the pixel-centre ray (no blending, so ids stay exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# the scene tables and the tracing moved to raycast.py; their names stay importable from here, where callers,
# tests and benchmarks have always found them (scene_tensors, _SceneTensors, _trace, ...)
from .raycast import AMBIENT, EPS, INF, _SceneTensors, _take, _trace, scene_tensors  # noqa: F401
from .scene import PRIMITIVE_KINDS, Scene
from .utils import V4SError, get_device


@dataclass
class RenderOutput:
    rgb: np.ndarray  # uint8 (N, H, W, 3)
    depth: np.ndarray  # float32 (N, H, W), metres along the camera's z axis
    instance: np.ndarray  # int16 (N, H, W), 0 = room, k = scene.objects[k-1]
    coverage: np.ndarray  # int32 (N, n_objects): pixels each object would cover with nothing in front of it


# ---------------------------------------------------------------------------------------------------------
# Culling: which primitives each pixel's ray can hit, from the primitives' projected bounding rectangles


_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]  # 12 box edges
NEAR = 1e-2


def _rects(st: _SceneTensors, c2w, K, width, height):
    """Pixel rectangles [u0, u1) x [v0, v1) that can see each primitive, per camera: (N, P, 4) long.

    The primitive's bounding box is clipped at the near plane first (corners in front plus the points where
    its edges cross the plane), so objects beside or behind the camera do not widen the rectangle.
    """
    w2c = torch.linalg.inv(c2w)
    cam = torch.einsum("nij,pkj->npki", w2c[:, :3, :3], st.corners) + w2c[:, None, None, :3, 3]  # (N, P, 8, 3)
    a, b = cam[:, :, [e[0] for e in _EDGES]], cam[:, :, [e[1] for e in _EDGES]]
    za, zb = a[..., 2], b[..., 2]
    cross = (za - NEAR) * (zb - NEAR) < 0
    s = ((NEAR - za) / torch.where(cross, zb - za, torch.ones_like(za))).clamp(0, 1)
    pts = torch.cat([cam, a + s[..., None] * (b - a)], 2)  # (N, P, 20, 3)
    ok = torch.cat([cam[..., 2] >= NEAR, cross], 2)
    uv = pts[..., :2] / pts[..., 2:].clamp(min=NEAR) * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])
    lo = torch.where(ok[..., None], uv, INF).amin(2)
    hi = torch.where(ok[..., None], uv, -INF).amax(2)
    any_ok = ok.any(2)
    lo, hi = torch.where(any_ok[..., None], lo, 0.0), torch.where(any_ok[..., None], hi, -1.0)
    u0 = (torch.floor(lo[..., 0]) - 1).clamp(0, width)
    v0 = (torch.floor(lo[..., 1]) - 1).clamp(0, height)
    u1 = (torch.ceil(hi[..., 0]) + 1).clamp(0, width)
    v1 = (torch.ceil(hi[..., 1]) + 1).clamp(0, height)
    rect = torch.stack([u0, torch.maximum(u1, u0), v0, torch.maximum(v1, v0)], -1)
    return torch.where(any_ok[..., None], rect, 0.0).long()


def _pairs_from_rects(rect, width, height):
    """All (ray, primitive) pairs whose pixel lies in the primitive's rectangle; rays indexed n*H*W + v*W + u."""
    N, P, _ = rect.shape
    w = (rect[..., 1] - rect[..., 0]).clamp(min=0).reshape(-1)
    h = (rect[..., 3] - rect[..., 2]).clamp(min=0).reshape(-1)
    cnt = w * h
    seg = torch.repeat_interleave(torch.arange(N * P, device=rect.device), cnt)
    k = torch.arange(len(seg), device=rect.device) - _take(torch.cumsum(cnt, 0) - cnt, seg)
    ws = _take(w, seg)
    row = _take(rect[..., 2].reshape(-1), seg) + torch.div(k, ws, rounding_mode="floor")
    col = _take(rect[..., 0].reshape(-1), seg) + k % ws
    cam = torch.div(seg, P, rounding_mode="floor")
    return cam * (height * width) + row * width + col, seg % P


def _groups_from_rects(st: _SceneTensors, rect, width, height):
    """Candidate pairs split by primitive kind: [(kind, ray, prim)]."""
    groups = []
    for k in range(len(PRIMITIVE_KINDS)):
        idx = torch.nonzero(st.kind == k)[:, 0]
        if len(idx):
            ray, local = _pairs_from_rects(rect.index_select(1, idx), width, height)
            groups.append((k, ray, _take(idx, local)))
    return groups


def _as_tensor(x, device, name, shape_tail):
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64, device=device)
    if t.shape[-len(shape_tail):] != shape_tail:
        raise V4SError(f"{name} must have shape (..., {', '.join(map(str, shape_tail))}), got {tuple(t.shape)}")
    return t


# long (~65 lines): rays, chunked tracing, antialias and the outputs' assembly in one place: the renderer's one entrance
def render(scene: Scene, c2w, K, width: int, height: int, antialias: int = 2, device="cpu",
           max_rays: int = 1 << 19, coverage: bool = True, tensors: "_SceneTensors | None" = None) -> RenderOutput:
    """Render N cameras (c2w (N, 4, 4) or (4, 4)) of the scene at width x height with intrinsics K.

    antialias=a re-casts edge pixels with a x a sub-pixel rays (1 = off). max_rays bounds the rays traced at
    once (memory); the result does not depend on it. coverage=False skips the objects' footprints (coverage comes
    back all zeros; the pose estimator compares colours only). tensors: the scene's primitive tables
    (`scene_tensors(scene, device)`), for a caller that renders the same scene many times (the pose estimator: the
    tables are built once, not copied to the device again every call); the same pictures.
    """
    dev = get_device(device) if isinstance(device, str) else device
    c2w = _as_tensor(c2w, dev, "c2w", (4, 4))
    if c2w.ndim == 2:
        c2w = c2w[None]
    if c2w.ndim != 3:
        raise V4SError(f"c2w must be (4, 4) or (N, 4, 4), got {tuple(c2w.shape)}")
    K = _as_tensor(K, dev, "K", (3, 3))
    if int(width) <= 0 or int(height) <= 0:
        raise V4SError(f"width and height must be positive, got {width} x {height}")
    if int(antialias) < 1:
        raise V4SError(f"antialias must be >= 1 (1 = off, 2 = 2x2 sub-pixel rays), got {antialias}")
    W_, H_ = int(width), int(height)
    st = _SceneTensors(scene, dev) if tensors is None else tensors
    N, HW = c2w.shape[0], W_ * H_
    rgb_out = torch.empty((N, H_, W_, 3), dtype=torch.uint8)
    depth_out = torch.empty((N, H_, W_), dtype=torch.float32)
    inst_out = torch.empty((N, H_, W_), dtype=torch.int16)
    cov_out = torch.zeros((N, st.n_objects), dtype=torch.int32)
    vv, uu = torch.meshgrid(torch.arange(H_, device=dev), torch.arange(W_, device=dev), indexing="ij")
    Kf = K.float()
    per_chunk = max(1, max_rays // HW)
    for s in range(0, N, per_chunk):
        cams = c2w[s:s + per_chunk]
        n = cams.shape[0]
        R = cams[:, :3, :3].float()
        origin = cams[:, :3, 3].float()

        right, down, fwd = R[:, :, 0], R[:, :, 1], R[:, :, 2]  # camera axes in world coordinates
        # one row per camera (origin, right, down, forward): one index_select per ray batch instead of four (rows of
        # 3 floats copy slowly: the sub-pixel rays spent ~4x longer gathering them)
        cam_rows = torch.cat([origin, right, down, fwd], 1)

        def rays(cam_idx, u, v):  # pixel coordinates (float) -> world rays with camera-z = 1 (t is depth)
            x, y = ((u - Kf[0, 2]) / Kf[0, 0])[:, None], ((v - Kf[1, 2]) / Kf[1, 1])[:, None]
            g = _take(cam_rows, cam_idx)
            return g[:, 0:3], x * g[:, 3:6] + y * g[:, 6:9] + g[:, 9:12]

        x = ((uu.reshape(-1) + 0.5 - Kf[0, 2]) / Kf[0, 0])[None, :, None]
        y = ((vv.reshape(-1) + 0.5 - Kf[1, 2]) / Kf[1, 1])[None, :, None]
        d = (x * right[:, None] + y * down[:, None] + fwd[:, None]).reshape(-1, 3)  # (n*HW, 3)
        o = origin.repeat_interleave(HW, 0)
        groups = _groups_from_rects(st, _rects(st, cams, K, W_, H_), W_, H_) if st.n_objects else []
        rgb, t, obj, hits = _trace(st, o, d, groups, want_coverage=coverage)
        if hits is not None:  # an object's unoccluded footprint: every pixel where any of its parts is hit
            mark = torch.zeros(n * st.n_objects * HW, dtype=torch.uint8, device=dev)
            cam = torch.div(hits[0], HW, rounding_mode="floor")
            mark.index_fill_(0, (cam * st.n_objects + hits[1] - 1) * HW + (hits[0] - cam * HW), 1)
            cov_out[s:s + n] = torch.count_nonzero(mark.view(n, st.n_objects, HW), dim=-1).to(torch.int32).cpu()
        rgb = rgb.view(n, H_, W_, 3)
        obj = obj.view(n, H_, W_)
        if antialias > 1:
            rgb = _antialias(st, rays, groups, rgb, obj, int(antialias))
        rgb_out[s:s + n] = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()
        depth_out[s:s + n] = t.view(n, H_, W_).cpu()
        inst_out[s:s + n] = obj.to(torch.int16).cpu()
    return RenderOutput(rgb_out.numpy(), depth_out.numpy(), inst_out.numpy(), cov_out.numpy())


EDGE_CONTRAST = 0.06  # colour step (0..1) above which a pixel is treated as an edge and supersampled


def _antialias(st, rays, groups, rgb, obj, a: int):
    """Re-cast pixels on edges (id or colour steps to a neighbour) with a x a sub-pixel rays; average them.

    A sub-pixel ray can only hit primitives whose rectangle holds its pixel: the centre pass's pairs say which.
    Pixels of the room whose neighbours are room too (a texture seam, a wall corner) are re-cast against the
    room alone: no object is near enough to matter, and that is most edge pixels at a fraction of the cost.
    """
    n, H, W, _ = rgb.shape
    id_edge = torch.zeros((n, H, W), dtype=torch.bool, device=rgb.device)
    edge = torch.zeros_like(id_edge)
    for dim in (1, 2):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[dim], hi[dim] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        step_id = obj[lo] != obj[hi]
        step = step_id | ((rgb[lo] - rgb[hi]).abs().amax(-1) > EDGE_CONTRAST)
        id_edge[lo] |= step_id
        id_edge[hi] |= step_id
        edge[lo] |= step
        edge[hi] |= step
    full = (edge & (id_edge | (obj != 0))).reshape(-1)
    room_only = (edge.reshape(-1) & ~full)
    out = rgb.reshape(-1, 3).clone()
    # both kinds of edge pixel in one trace (fewer, larger operations; a ray's colour depends on its own pairs only):
    # the object edges first, then the room's, which get no candidate pairs
    pix_full = torch.nonzero(full)[:, 0]
    pix = torch.cat([pix_full, torch.nonzero(room_only)[:, 0]])
    E, E_full = len(pix), len(pix_full)
    if E == 0:
        return out.view(n, H, W, 3)
    cam = torch.div(pix, H * W, rounding_mode="floor")
    rem = pix - cam * (H * W)
    row = torch.div(rem, W, rounding_mode="floor")
    col = rem - row * W
    offs = (torch.arange(a, device=rgb.device, dtype=torch.float32) + 0.5) / a
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    S = a * a
    o, d = rays(cam.repeat_interleave(S), (col[:, None] + ox.reshape(-1)).reshape(-1).float(),
                (row[:, None] + oy.reshape(-1)).reshape(-1).float())
    sub_groups = []
    if E_full:
        edge_id = torch.full((len(full),), -1, dtype=torch.long, device=rgb.device)
        edge_id[pix_full] = torch.arange(E_full, device=rgb.device)
        for k, ray, prim in groups:
            keep = torch.nonzero(_take(full, ray))[:, 0]
            e_idx = _take(edge_id, _take(ray, keep))
            sub_groups.append((k, (e_idx[:, None] * S + torch.arange(S, device=rgb.device)).reshape(-1),
                               _take(prim, keep).repeat_interleave(S)))
    sub, _, _, _ = _trace(st, o, d, sub_groups)
    out.index_copy_(0, pix, sub.view(E, S, 3).mean(1))
    return out.view(n, H, W, 3)


def boxes_from_instance(instance, n_objects: int, coverage=None):
    """Per-frame 2D boxes and visibility of objects 1..n_objects from an instance buffer (N, H, W).

    boxes (N, n_objects, 4) float (x0, y0, x1, y1), inclusive-exclusive pixel bounds, NaN where unseen.
    visible (N, n_objects): with coverage (RenderOutput.coverage) the fraction of the object's in-frame
    footprint that is not occluded; without it, 1.0 where any pixel is seen and 0.0 otherwise.
    """
    inst = torch.as_tensor(np.asarray(instance)).long()
    if inst.ndim == 2:
        inst = inst[None]
    if inst.ndim != 3:
        raise V4SError(f"instance must be (N, H, W) or (H, W), got shape {tuple(inst.shape)}")
    N, H, W = inst.shape
    ids = torch.arange(1, n_objects + 1)
    boxes = torch.full((N, n_objects, 4), float("nan"), dtype=torch.float64)
    counts = torch.zeros((N, n_objects), dtype=torch.float64)
    cols = torch.arange(W)
    rows = torch.arange(H)
    for i in range(N):
        m = inst[i][None] == ids[:, None, None]  # (n, H, W)
        colany, rowany = m.any(1), m.any(2)  # (n, W), (n, H)
        seen = colany.any(1)
        big = 1 << 30
        x0 = torch.where(colany, cols, big).amin(1)
        x1 = torch.where(colany, cols, -1).amax(1) + 1
        y0 = torch.where(rowany, rows, big).amin(1)
        y1 = torch.where(rowany, rows, -1).amax(1) + 1
        b = torch.stack([x0, y0, x1, y1], -1).double()
        boxes[i] = torch.where(seen[:, None], b, float("nan"))
        counts[i] = m.sum((1, 2)).double()
    if coverage is None:
        visible = (counts > 0).double()
    else:
        cov = torch.as_tensor(np.asarray(coverage)).double()
        if cov.shape != (N, n_objects):
            raise V4SError(f"coverage must be (N, n_objects) = {(N, n_objects)}, got {tuple(cov.shape)}")
        visible = torch.where(cov > 0, counts / cov.clamp(min=1), 0.0).clamp(0, 1)
    return boxes.numpy(), visible.numpy()


MIN_SHARE = 0.01  # a target covers at least 1% of the final view (evaluate.Judge.prominent)


def framing_score(boxes, whole, width: int, height: int) -> np.ndarray:
    """How well each frame shows each object as a walk's final view (N, n_obj): the box's share of the image,
    less for an off-centre box; -inf where the object is cut by the border or covers under MIN_SHARE."""
    share = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) / (width * height)
    centre = np.stack([(boxes[..., 0] + boxes[..., 2]) / 2 / width, (boxes[..., 1] + boxes[..., 3]) / 2 / height], -1)
    off = np.linalg.norm(centre - 0.5, axis=-1) / math.sqrt(0.5)  # 0 at the centre, 1 in a corner
    score = share * (1 - off)
    return np.where(whole & (np.nan_to_num(share) >= MIN_SHARE), np.nan_to_num(score, nan=-np.inf), -np.inf)

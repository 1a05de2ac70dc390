"""A torch ray caster for the synthetic rooms: RGB, depth and instance ids, batched over cameras.

Every pixel casts one ray (pinhole, OpenCV axes, through the pixel centre). The room is the inside of a box, so
its hit is a closed form; each object is a handful of analytic primitives (boxes, vertical cylinders,
spheres, vertical cones). Two tricks keep it fast on a CPU:

  * culling: a primitive is only tested against the rays inside its projected bounding rectangle, so the
    work is "pixels covered", not "pixels x primitives";
  * adaptive anti-aliasing: pixels whose neighbours differ (an object edge, a texture seam) are re-cast with
    antialias x antialias sub-pixel rays and averaged; flat pixels keep their single ray.

Depth and instance ids come from the pixel-centre ray (no blending, so ids stay exact). Shading is Lambert
from a point light under the ceiling plus ambient light; every shade factor is <= 1, so a palette without
strong red renders without strong red (red is the model's box colour).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .scene import PALETTE, PRIMITIVE_KINDS, Scene
from .utils import V4SError, get_device

AMBIENT = 0.42
EPS = 1e-4
INF = float("inf")


@dataclass
class RenderOutput:
    rgb: np.ndarray  # uint8 (N, H, W, 3)
    depth: np.ndarray  # float32 (N, H, W), metres along the camera's z axis
    instance: np.ndarray  # int16 (N, H, W), 0 = room, k = scene.objects[k-1]
    coverage: np.ndarray  # int32 (N, n_objects): pixels each object would cover with nothing in front of it


class _SceneTensors:
    """The scene flattened into primitive tables (one row per primitive)."""

    def __init__(self, scene: Scene, device):
        ids = [o.id for o in scene.objects]
        if ids != list(range(1, len(ids) + 1)):
            raise V4SError(f"object ids must be 1..n in scene.objects order (the instance buffer's convention), "
                           f"got {ids}; renumber them")
        prims = [(o, p) for o in scene.objects for p in o.primitives]
        self.n_objects = len(scene.objects)
        self.room = tuple(float(v) for v in scene.room)
        f = lambda x: torch.tensor(np.asarray(x, dtype=np.float32).reshape(len(prims), -1), device=device)  # noqa: E731
        self.center = f([p.center for _, p in prims])
        self.half = f([p.half for _, p in prims])
        yaw = np.array([p.yaw for _, p in prims], dtype=np.float64)
        self.cos, self.sin = f(np.cos(yaw))[:, 0], f(np.sin(yaw))[:, 0]
        self.kind = torch.tensor([PRIMITIVE_KINDS.index(p.kind) for _, p in prims], dtype=torch.long, device=device)
        self.obj = torch.tensor([o.id for o, _ in prims], dtype=torch.long, device=device)
        self.albedo = f([np.array(PALETTE[o.color]) * min(p.shade, 1.0) for o, p in prims])
        lohi = [p.aabb() for _, p in prims]
        lo, hi = np.array([a for a, _ in lohi]).reshape(-1, 3), np.array([b for _, b in lohi]).reshape(-1, 3)
        sel = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])  # (8, 3) lo/hi choices
        corners = np.where(sel[None, :, :] == 0, lo[:, None, :], hi[:, None, :])  # (P, 8, 3)
        self.corners = torch.tensor(corners, dtype=torch.float64, device=device)
        tex = scene.textures
        self.floor_tex, self.wall_tex = tex["floor"], tex["walls"]
        self.floor_color = torch.tensor(tex["floor_color"], dtype=torch.float32, device=device)
        self.wall_colors = torch.tensor(tex["wall_colors"], dtype=torch.float32, device=device)
        self.ceiling_color = torch.tensor(tex["ceiling_color"], dtype=torch.float32, device=device)
        W, D, H = self.room
        self.light = torch.tensor([W / 2, D / 2, H - 0.05], dtype=torch.float32, device=device)


# ---------------------------------------------------------------------------------------------------------
# Ray-primitive intersections. o, d: (M, 3) ray origins and directions (not normalised); c, h: (M, 3) the
# primitive's centre and half sizes. Each returns the ray parameter t of the first hit, inf for a miss.


def _rotate(v, cos, sin):
    """Rotate (M, 3) vectors by -yaw about z: world -> box frame."""
    return torch.stack([cos * v[:, 0] + sin * v[:, 1], -sin * v[:, 0] + cos * v[:, 1], v[:, 2]], -1)


def _safe(x):
    return torch.where(x.abs() < 1e-9, torch.full_like(x, 1e-9), x)


def _hit_box(o, d, c, h, cos, sin):
    p, dd = _rotate(o - c, cos, sin), _safe(_rotate(d, cos, sin))
    t1, t2 = (-h - p) / dd, (h - p) / dd
    tn, tf = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
    return torch.where((tf >= tn) & (tn > EPS), tn, INF)


def _hit_cylinder(o, d, c, h):
    p, r, hz = o - c, h[:, 0], h[:, 2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = p[:, 0] * d[:, 0] + p[:, 1] * d[:, 1]
    disc = b * b - a * (p[:, 0] ** 2 + p[:, 1] ** 2 - r * r)
    t_side = (-b - disc.clamp(min=0).sqrt()) / a.clamp(min=1e-12)
    z = p[:, 2] + t_side * d[:, 2]
    t_side = torch.where((disc >= 0) & (a > 1e-12) & (z.abs() <= hz) & (t_side > EPS), t_side, INF)
    zc = torch.where(d[:, 2] < 0, hz, -hz)  # the cap that faces the ray
    t_cap = (zc - p[:, 2]) / _safe(d[:, 2])
    x, y = p[:, 0] + t_cap * d[:, 0], p[:, 1] + t_cap * d[:, 1]
    t_cap = torch.where((x * x + y * y <= r * r) & (t_cap > EPS), t_cap, INF)
    return torch.minimum(t_side, t_cap)


def _hit_sphere(o, d, c, h):
    p, r = o - c, h[:, 0]
    a, b = (d * d).sum(-1), (p * d).sum(-1)
    disc = b * b - a * ((p * p).sum(-1) - r * r)
    t = (-b - disc.clamp(min=0).sqrt()) / a
    return torch.where((disc >= 0) & (t > EPS), t, INF)


def _hit_cone(o, d, c, h):
    # Apex at local z = +hz, base radius r at z = -hz: x^2 + y^2 = k^2 (hz - z)^2 with k = r / (2 hz).
    p, r, hz = o - c, h[:, 0], h[:, 2]
    k2 = (r / (2 * hz)) ** 2
    zz = hz - p[:, 2]
    A = d[:, 0] ** 2 + d[:, 1] ** 2 - k2 * d[:, 2] ** 2
    B = p[:, 0] * d[:, 0] + p[:, 1] * d[:, 1] + k2 * zz * d[:, 2]
    C = p[:, 0] ** 2 + p[:, 1] ** 2 - k2 * zz * zz
    disc = B * B - A * C
    sq, As = disc.clamp(min=0).sqrt(), _safe(A)
    best = torch.full_like(A, INF)
    for t in ((-B - sq) / As, (-B + sq) / As):
        z = p[:, 2] + t * d[:, 2]
        best = torch.minimum(best, torch.where((disc >= 0) & (z.abs() <= hz) & (t > EPS), t, INF))
    t_cap = (-hz - p[:, 2]) / _safe(d[:, 2])  # the base, seen from below
    x, y = p[:, 0] + t_cap * d[:, 0], p[:, 1] + t_cap * d[:, 1]
    t_cap = torch.where((d[:, 2] > 0) & (x * x + y * y <= r * r) & (t_cap > EPS), t_cap, INF)
    return torch.minimum(best, t_cap)


def _normals(kind: int, q, h, cos, sin):
    """Outward unit normals at hit points q (M, 3) given relative to the primitive's centre."""
    if kind == 0:  # box: the face whose slab the point is on
        ql = _rotate(q, cos, sin)
        axis = (ql.abs() / h).argmax(-1)
        n = torch.zeros_like(ql).scatter_(1, axis[:, None], torch.sign(ql.gather(1, axis[:, None])))
        return torch.stack([cos * n[:, 0] - sin * n[:, 1], sin * n[:, 0] + cos * n[:, 1], n[:, 2]], -1)
    if kind == 2:
        return q / q.norm(dim=-1, keepdim=True)
    rho = (q[:, 0] ** 2 + q[:, 1] ** 2).sqrt()
    cap = torch.stack([torch.zeros_like(rho), torch.zeros_like(rho), torch.sign(q[:, 2])], -1)
    if kind == 1:
        side = torch.stack([q[:, 0], q[:, 1], torch.zeros_like(rho)], -1) / rho.clamp(min=1e-9)[:, None]
        on_cap = (q[:, 2].abs() - h[:, 2]).abs() < (rho - h[:, 0]).abs()
    else:
        k = h[:, 0] / (2 * h[:, 2])
        side = torch.stack([q[:, 0], q[:, 1], k * k * (h[:, 2] - q[:, 2])], -1)
        side = side / side.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        on_cap = (q[:, 2] + h[:, 2]).abs() < (rho - k * (h[:, 2] - q[:, 2])).abs()
    return torch.where(on_cap[:, None], cap, side)


# ---------------------------------------------------------------------------------------------------------
# The room: inside of [0, W] x [0, D] x [0, H]. Faces 0: x=0, 1: x=W, 2: y=0, 3: y=D, 4: floor, 5: ceiling.


def _hit_room(o, d, room):
    hi = torch.tensor(room, dtype=o.dtype, device=o.device)
    t_axis = (torch.where(d > 0, hi, 0.0) - o) / d  # the wall each axis runs into
    t_axis = torch.where(t_axis > 0, t_axis, INF)  # d == 0 (either sign) gives +-inf or nan: never the exit
    t, axis = t_axis.min(-1)
    positive = torch.gather(d, 1, axis[:, None])[:, 0] > 0
    return t, 2 * axis + positive.long()


def _hash(i):
    """A deterministic pseudo-random value in [0, 1) per integer cell (plank, tile)."""
    return torch.frac(torch.sin(i * 12.9898 + 78.233) * 43758.5453).abs()


def _floor_albedo(st: _SceneTensors, x, y):
    # patterns by world coordinate: they slide under a moving camera, which is the parallax cue
    one = torch.ones_like(x)
    if st.floor_tex == "planks":
        j = torch.floor(y / 0.2)
        off = _hash(j + 17.0) * 1.5
        seam = (torch.frac(y / 0.2) < 0.05) | (torch.frac((x + off) / 1.5) < 0.015)
        f = torch.where(seam, 0.55 * one, 0.8 + 0.2 * _hash(j))
    elif st.floor_tex == "checker":
        f = torch.where((torch.floor(x / 0.5) + torch.floor(y / 0.5)) % 2 == 0, one, 0.62 * one)
    else:  # tiles
        seam = (torch.frac(x / 0.4) < 0.04) | (torch.frac(y / 0.4) < 0.04)
        f = torch.where(seam, 0.6 * one, 0.9 + 0.1 * _hash(torch.floor(x / 0.4) * 31 + torch.floor(y / 0.4)))
    return st.floor_color * f[:, None]


def _wall_albedo(st: _SceneTensors, s, z, face):
    """s: the coordinate along the wall; each wall has its own tone (an orientation cue)."""
    one = torch.ones_like(s)
    if st.wall_tex == "stripes":
        w = torch.where(torch.floor(s / 0.15) % 2 == 0, one, 0.84 * one)
    elif st.wall_tex == "bricks":
        row = torch.floor(z / 0.15)
        s2 = s + 0.15 * (row % 2)
        mortar = (torch.frac(z / 0.15) < 0.1) | (torch.frac(s2 / 0.3) < 0.05)
        w = torch.where(mortar, 0.72 * one, 0.92 + 0.08 * _hash(row * 7 + torch.floor(s2 / 0.3)))
    else:  # panels with a rail
        w = torch.where(torch.frac(s / 0.6) < 0.03, 0.72 * one, torch.where(z < 0.9, 0.86 * one, one))
        w = torch.where((z > 0.9) & (z < 0.95), 0.7 * one, w)
    w = torch.where(z < 0.1, 0.55 * one, w)  # skirting board: marks where wall meets floor
    return _take(st.wall_colors, face) * w[:, None]


def _room_albedo(st: _SceneTensors, p, face):
    out = st.ceiling_color.expand(len(face), 3).clone()
    fl = torch.nonzero(face == 4)[:, 0]
    pf = _take(p, fl)
    out.index_copy_(0, fl, _floor_albedo(st, pf[:, 0], pf[:, 1]))
    wa = torch.nonzero(face < 4)[:, 0]
    fw, pw = _take(face, wa), _take(p, wa)
    out.index_copy_(0, wa, _wall_albedo(st, torch.where(fw < 2, pw[:, 1], pw[:, 0]), pw[:, 2], fw))
    return out


# ---------------------------------------------------------------------------------------------------------
# Tracing


def _take(x, idx):
    return x.index_select(0, idx)  # much faster than x[idx] on CPU


_HIT = {"box": _hit_box, "cylinder": _hit_cylinder, "sphere": _hit_sphere, "cone": _hit_cone}


def _trace(st: _SceneTensors, o, d, groups, want_coverage=False):
    """Closest hits of rays o, d (R, 3), testing only the candidate pairs in groups: one (kind, ray, prim)
    triple of index tensors per primitive kind.

    Returns rgb (R, 3) float, t (R,), object id (R,) and, if asked, the (ray, object) pairs that hit.
    """
    R = d.shape[0]
    t, face = _hit_room(o, d, st.room)
    t_groups = []
    for k, ray, prim in groups:
        oo, dd, c, h = _take(o, ray), _take(d, ray), _take(st.center, prim), _take(st.half, prim)
        if k == 0:
            tk = _hit_box(oo, dd, c, h, _take(st.cos, prim), _take(st.sin, prim))
        else:
            tk = _HIT[PRIMITIVE_KINDS[k]](oo, dd, c, h)
        t_groups.append(tk)
        t = t.scatter_reduce(0, ray, tk, "amin", include_self=True)
    # ties (two parts touching exactly) go to the higher primitive index: deterministic
    prim_hit = torch.full((R,), -1, dtype=torch.long, device=d.device)
    for (k, ray, prim), tk in zip(groups, t_groups):
        win = torch.nonzero((tk == _take(t, ray)) & torch.isfinite(tk))[:, 0]
        prim_hit = prim_hit.scatter_reduce(0, _take(ray, win), _take(prim, win), "amax", include_self=True)

    p = o + t[:, None] * d
    to_light = st.light - p
    # Lambert: n . l. Room faces are axis planes facing into the room, so n . l is one signed coordinate.
    axis = face // 2
    ndl = to_light.gather(1, axis[:, None])[:, 0] * (1 - 2 * (face % 2)).float()
    albedo = torch.empty_like(p)
    hit_obj = prim_hit >= 0
    rays = torch.nonzero(hit_obj)[:, 0]
    room = torch.nonzero(~hit_obj)[:, 0]
    albedo.index_copy_(0, room, _room_albedo(st, _take(p, room), _take(face, room)))
    if len(rays):
        pr = _take(prim_hit, rays)
        n_obj = torch.empty((len(rays), 3), device=d.device)
        kinds = _take(st.kind, pr)
        for k in range(len(PRIMITIVE_KINDS)):
            sel = torch.nonzero(kinds == k)[:, 0]
            if len(sel):
                ps = _take(pr, sel)
                q = _take(p, _take(rays, sel)) - _take(st.center, ps)
                n_obj.index_copy_(0, sel, _normals(k, q, _take(st.half, ps), _take(st.cos, ps), _take(st.sin, ps)))
        ndl.index_copy_(0, rays, (n_obj * _take(to_light, rays)).sum(-1))
        albedo.index_copy_(0, rays, _take(st.albedo, pr))
    lam = (ndl / to_light.norm(dim=-1).clamp(min=1e-6)).clamp(min=0)
    rgb = albedo * (AMBIENT + (1 - AMBIENT) * lam)[:, None]
    obj = torch.where(hit_obj, _take(st.obj, prim_hit.clamp(min=0)), torch.zeros_like(prim_hit))
    hits = None
    if want_coverage:
        hr, ho = [], []
        for (k, ray, prim), tk in zip(groups, t_groups):
            h = torch.nonzero(torch.isfinite(tk))[:, 0]
            hr.append(_take(ray, h))
            ho.append(_take(st.obj, _take(prim, h)))
        hits = (torch.cat(hr), torch.cat(ho)) if hr else None
    return rgb, t, obj, hits


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


def scene_tensors(scene: Scene, device="cpu") -> _SceneTensors:
    """The scene's primitive tables on the device, for `render(..., tensors=)`."""
    return _SceneTensors(scene, get_device(device) if isinstance(device, str) else device)


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

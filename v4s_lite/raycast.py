"""What one ray sees in a synthetic room: its colour, its depth and the object it hits (`render.py` casts the rays).

The room is the inside of a box, so its hit is a closed form; each object is a handful of analytic primitives
(boxes, vertical cylinders, spheres, vertical cones), flattened here into tables (one row per primitive) that
`_trace` indexes with the (ray, primitive) pairs the renderer's culling lets through. Shading is Lambert from a
point light under the ceiling plus ambient light; every shade factor is <= 1, so a palette without strong red
renders without strong red (red is the model's box colour).
"""
from __future__ import annotations

import numpy as np
import torch

from .scene import PALETTE, PRIMITIVE_KINDS, Scene
from .utils import V4SError, get_device

AMBIENT = 0.42
EPS = 1e-4
INF = float("inf")


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


def scene_tensors(scene: Scene, device="cpu") -> _SceneTensors:
    """The scene's primitive tables on the device, for `render(..., tensors=)`."""
    return _SceneTensors(scene, get_device(device) if isinstance(device, str) else device)


def _take(x, idx):
    return x.index_select(0, idx)  # much faster than x[idx] on CPU


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
# Tracing: the closest hit among the room and the candidate primitives, then its shade


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

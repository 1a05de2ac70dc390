"""The synthetic spatial world: procedural rooms, pinhole cameras, trajectories, annotations, instructions.

Everything the model learns about space comes from videos of these rooms, so the room must give the
cues a real room gives: textured floor and walls (parallax), objects of recognisable shapes and colours,
occlusion. Conventions (docs/DESIGN.md): metres, z up, floor at z = 0, the room spans [0, W] x [0, D] x [0, H];
cameras are OpenCV pinholes (x right, y down, z forward) with camera-to-world poses `c2w`.

    scene = make_scene(seed=0)
    K = intrinsics(104, 64)
    clip = make_clip(scene, "grounding", QUICK, seed=0)   # scan + approach, rendered and annotated
"""
from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .utils import V4SError

# ---------------------------------------------------------------------------------------------------------
# Palette and categories

# Albedos in [0, 1]. Red is reserved for the model's boxes: no colour here has r > 0.6 with g, b < 0.35,
# at any brightness: shading only scales a colour down (render.py keeps every shade factor <= 1), so each colour
# keeps g / r or b / r above 0.35 / 0.6 and no rendered pixel is strong red.
PALETTE: dict[str, tuple[float, float, float]] = {
    "blue": (0.18, 0.33, 0.80),
    "green": (0.20, 0.58, 0.24),
    "yellow": (0.92, 0.80, 0.18),
    "orange": (0.95, 0.62, 0.15),
    "purple": (0.50, 0.28, 0.68),
    "pink": (0.95, 0.60, 0.72),
    "teal": (0.08, 0.55, 0.55),
    "white": (0.92, 0.92, 0.90),
    "black": (0.12, 0.12, 0.14),
    "brown": (0.45, 0.30, 0.18),
    "gray": (0.50, 0.50, 0.52),
}

# Room surfaces use muted tones so that objects stand out; each wall gets its own tone (an orientation cue).
WALL_TONES = [(0.78, 0.74, 0.66), (0.66, 0.72, 0.76), (0.74, 0.76, 0.66), (0.72, 0.68, 0.74),
              (0.80, 0.78, 0.74), (0.64, 0.68, 0.64)]
FLOOR_TONES = [(0.55, 0.42, 0.30), (0.60, 0.58, 0.54), (0.48, 0.44, 0.40), (0.58, 0.50, 0.38)]
CEILING_TONE = (0.90, 0.90, 0.88)
FLOOR_TEXTURES = ("planks", "checker", "tiles")
WALL_TEXTURES = ("stripes", "bricks", "panels")

CATEGORIES: tuple[str, ...] = ("chair", "table", "sofa", "bed", "lamp", "plant", "cabinet", "tv", "stool",
                               "bookshelf")
# Categories that stand with their back against a wall (their local -y side).
AGAINST_WALL = {"sofa", "bed", "cabinet", "tv", "bookshelf"}

PRIMITIVE_KINDS = ("box", "cylinder", "sphere", "cone")


def is_strong_red(rgb) -> bool:
    """The colour test reserved for the model's red box (DESIGN.md): r > 0.6 and g, b < 0.35."""
    r, g, b = rgb
    return r > 0.6 and g < 0.35 and b < 0.35


# ---------------------------------------------------------------------------------------------------------
# Scene description


@dataclass
class Primitive:
    """An analytic solid in world coordinates.

    box: `half` = half extents, rotated by `yaw` (radians) about z.  cylinder (vertical): radius `half[0]`,
    half height `half[2]`.  sphere: radius `half[0]`.  cone (vertical, apex up): base radius `half[0]`,
    half height `half[2]`.  `shade` (<= 1) darkens the object's colour on this part (legs, screens, pots).
    """
    kind: str
    center: np.ndarray
    half: np.ndarray
    yaw: float = 0.0
    shade: float = 1.0

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        c, h = np.asarray(self.center, float), np.asarray(self.half, float)
        if self.kind == "box":
            cs, sn = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
            e = np.array([cs * h[0] + sn * h[1], sn * h[0] + cs * h[1], h[2]])
        elif self.kind == "sphere":
            e = np.array([h[0], h[0], h[0]])
        else:  # cylinder, cone
            e = np.array([h[0], h[0], h[2]])
        return c - e, c + e

    def to_dict(self) -> dict:
        return {"kind": self.kind, "center": [float(v) for v in self.center], "half": [float(v) for v in self.half],
                "yaw": float(self.yaw), "shade": float(self.shade)}

    @classmethod
    def from_dict(cls, d: dict) -> "Primitive":
        return cls(d["kind"], np.array(d["center"], float), np.array(d["half"], float), float(d["yaw"]),
                   float(d["shade"]))


@dataclass
class SceneObject:
    id: int  # 1..n; 0 is the room in the instance buffer
    category: str
    color: str  # a PALETTE name
    primitives: list[Primitive]
    yaw: float = 0.0  # which way the object faces (radians); its front is local +y

    @property
    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = zip(*(p.aabb() for p in self.primitives))
        return np.min(lo, axis=0), np.max(hi, axis=0)

    @property
    def center(self) -> np.ndarray:
        lo, hi = self.aabb
        return (lo + hi) / 2

    @property
    def size(self) -> np.ndarray:
        lo, hi = self.aabb
        return hi - lo

    def corners(self) -> np.ndarray:
        """The 8 corners of the axis-aligned bounding box, (8, 3)."""
        lo, hi = self.aabb
        return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])

    @property
    def name(self) -> str:
        return f"{self.color} {self.category}"

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "color": self.color, "yaw": float(self.yaw),
                "primitives": [p.to_dict() for p in self.primitives]}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneObject":
        return cls(int(d["id"]), d["category"], d["color"], [Primitive.from_dict(p) for p in d["primitives"]],
                   float(d["yaw"]))


@dataclass
class Scene:
    seed: int
    room: tuple[float, float, float]  # (W, D, H) in metres
    textures: dict  # floor / walls pattern names and tones (JSON-safe)
    objects: list[SceneObject] = field(default_factory=list)

    def object(self, id: int) -> SceneObject:
        for o in self.objects:
            if o.id == id:
                return o
        raise V4SError(f"scene has no object with id {id}; ids are {[o.id for o in self.objects]}")

    def to_dict(self) -> dict:
        return {"seed": int(self.seed), "room": [float(v) for v in self.room], "textures": self.textures,
                "objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        try:
            return cls(int(d["seed"]), tuple(float(v) for v in d["room"]), dict(d["textures"]),
                       [SceneObject.from_dict(o) for o in d["objects"]])
        except (KeyError, TypeError) as e:
            raise V4SError(f"not a scene dict ({e!r}); expected the output of Scene.to_dict()") from None


# ---------------------------------------------------------------------------------------------------------
# Furniture: each category is a few primitives in a local frame (footprint centred at the origin, floor at
# z = 0, front towards +y). Sizes jitter per object so that no two chairs are identical.


def _box(c, size, shade=1.0):
    return Primitive("box", np.array(c, float), np.array(size, float) / 2, 0.0, shade)


def _cyl(c, radius, height, shade=1.0):
    return Primitive("cylinder", np.array(c, float), np.array([radius, radius, height / 2]), 0.0, shade)


def _build(category: str, rng: np.random.Generator) -> list[Primitive]:
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    if category == "chair":
        w, s, back = u(0.42, 0.52), u(0.42, 0.48), u(0.4, 0.5)
        legs = [_box((x * (w / 2 - 0.03), y * (w / 2 - 0.03), s / 2), (0.05, 0.05, s), 0.7)
                for x in (-1, 1) for y in (-1, 1)]
        return [_box((0, 0, s + 0.03), (w, w, 0.06)), _box((0, -w / 2 + 0.03, s + 0.06 + back / 2), (w, 0.06, back))] + legs
    if category == "table":
        w, d, h = u(0.9, 1.4), u(0.6, 0.85), u(0.7, 0.76)
        legs = [_box((x * (w / 2 - 0.06), y * (d / 2 - 0.06), (h - 0.05) / 2), (0.06, 0.06, h - 0.05), 0.7)
                for x in (-1, 1) for y in (-1, 1)]
        return [_box((0, 0, h - 0.025), (w, d, 0.05))] + legs
    if category == "sofa":
        w, d = u(1.5, 2.0), u(0.75, 0.9)
        return [_box((0, 0.05, 0.21), (w - 0.3, d - 0.1, 0.42)),
                _box((0, -d / 2 + 0.1, 0.45), (w, 0.2, 0.9), 0.85),
                _box((-w / 2 + 0.09, 0, 0.31), (0.18, d, 0.62), 0.85), _box((w / 2 - 0.09, 0, 0.31), (0.18, d, 0.62), 0.85)]
    if category == "bed":
        w, d = u(0.9, 1.1), u(1.85, 2.05)  # a single bed, long side against the wall
        return [_box((0, 0, 0.22), (d, w, 0.44)), _box((-d / 2 + 0.04, 0, 0.45), (0.08, w, 0.9), 0.8),
                _box((-d / 2 + 0.3, 0, 0.5), (0.35, w - 0.2, 0.12), 0.9)]
    if category == "lamp":
        h, r = u(1.4, 1.7), u(0.18, 0.25)
        return [_cyl((0, 0, 0.02), 0.16, 0.04, 0.6), _cyl((0, 0, h / 2), 0.025, h, 0.6),
                Primitive("cone", np.array([0, 0, h + 0.12]), np.array([r, r, 0.16]), 0.0, 1.0)]
    if category == "plant":
        pot_r, pot_h = u(0.14, 0.2), u(0.25, 0.35)
        pot = _cyl((0, 0, pot_h / 2), pot_r, pot_h, 0.55)
        if rng.random() < 0.5:  # a bush
            r = u(0.3, 0.4)
            return [pot, Primitive("sphere", np.array([0, 0, pot_h + r * 0.9]), np.array([r, r, r]))]
        r, h = u(0.3, 0.4), u(0.9, 1.3)  # a little tree
        return [pot, Primitive("cone", np.array([0, 0, pot_h + h / 2]), np.array([r, r, h / 2]))]
    if category == "cabinet":
        w, d, h = u(0.8, 1.2), u(0.4, 0.5), u(0.8, 1.0)
        return [_box((0, 0, h / 2), (w, d, h)), _box((0, 0.02, h + 0.02), (w + 0.04, d + 0.04, 0.04), 0.75),
                _box((0, d / 2 + 0.01, h * 0.6), (w * 0.6, 0.02, 0.04), 0.5)]
    if category == "tv":
        w = u(0.9, 1.2)
        return [_box((0, 0, 0.25), (w + 0.2, 0.4, 0.5), 0.6), _box((0, -0.05, 0.5 + 0.36), (w, 0.06, 0.6)),
                _box((0, -0.015, 0.5 + 0.36), (w - 0.08, 0.0, 0.52), 0.3)]
    if category == "stool":
        h, r = u(0.55, 0.7), u(0.17, 0.22)
        return [_cyl((0, 0, h - 0.03), r, 0.06), _cyl((0, 0, (h - 0.06) / 2), 0.04, h - 0.06, 0.7),
                _cyl((0, 0, 0.015), r * 0.8, 0.03, 0.7)]
    if category == "bookshelf":
        w, d, h = u(0.8, 1.0), u(0.3, 0.35), u(1.6, 1.9)
        parts = [_box((0, -d / 2 + 0.01, h / 2), (w, 0.02, h), 0.6),
                 _box((-w / 2 + 0.02, 0, h / 2), (0.04, d, h)), _box((w / 2 - 0.02, 0, h / 2), (0.04, d, h))]
        parts += [_box((0, 0, z), (w - 0.08, d, 0.03)) for z in np.linspace(0.05, h - 0.02, 5)]
        return parts
    raise V4SError(f"unknown category {category!r}; choose from {CATEGORIES}")


def _fix_thin(p: Primitive) -> Primitive:
    # The tv screen is a zero-thickness box in the builder for clarity; give it 1 cm so slabs are well defined.
    if p.kind == "box":
        p.half = np.maximum(p.half, 0.005)
    return p


def _place(prims: list[Primitive], xy, yaw: float) -> list[Primitive]:
    """Rotate a local part list by yaw about z and move it to xy (world)."""
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for p in prims:
        x, y, z = p.center
        center = np.array([xy[0] + c * x - s * y, xy[1] + s * x + c * y, z])
        out.append(_fix_thin(Primitive(p.kind, center, p.half.copy(), p.yaw + yaw if p.kind == "box" else 0.0, p.shade)))
    return out


# ---------------------------------------------------------------------------------------------------------
# Free space: where a camera may stand. The scan walks an ellipse around the room centre; objects are placed
# off that ring so the scan never walks through furniture.

CAMERA_CLEARANCE = 0.35  # metres from any object footprint
WALL_CLEARANCE = 0.3  # metres from any wall
EYE_HEIGHT = 1.5


def _ring_radii(W: float, D: float) -> tuple[float, float]:
    return max(0.5, W / 2 - 1.45), max(0.5, D / 2 - 1.45)


def _footprints(scene: Scene) -> np.ndarray:
    """(n, 4) object footprints [x0, y0, x1, y1]."""
    if not scene.objects:
        return np.zeros((0, 4))
    return np.array([[*o.aabb[0][:2], *o.aabb[1][:2]] for o in scene.objects])


def _rect_distance(xy: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """Distance from points (..., 2) to rectangles (n, 4) -> (..., n); 0 inside."""
    xy = np.asarray(xy, float)[..., None, :]
    dx = np.maximum(np.maximum(rects[:, 0] - xy[..., 0], xy[..., 0] - rects[:, 2]), 0)
    dy = np.maximum(np.maximum(rects[:, 1] - xy[..., 1], xy[..., 1] - rects[:, 3]), 0)
    return np.hypot(dx, dy)


def is_free(scene: Scene, xy, clearance: float = CAMERA_CLEARANCE, exclude: tuple = ()) -> np.ndarray:
    """Whether a camera may stand at xy (..., 2): inside the room with a margin and away from every object."""
    xy = np.asarray(xy, float)
    W, D, _ = scene.room
    ok = (xy[..., 0] >= WALL_CLEARANCE) & (xy[..., 0] <= W - WALL_CLEARANCE)
    ok &= (xy[..., 1] >= WALL_CLEARANCE) & (xy[..., 1] <= D - WALL_CLEARANCE)
    rects = _footprints(scene)
    keep = [i for i, o in enumerate(scene.objects) if o.id not in exclude]
    if keep:
        ok &= (_rect_distance(xy, rects[keep]) >= clearance).all(-1)
    return ok


def _segment_free(scene: Scene, a, b, step: float = 0.05) -> bool:
    n = max(2, int(np.ceil(np.linalg.norm(np.subtract(b, a)) / step)) + 1)
    pts = np.linspace(a, b, n)
    return bool(is_free(scene, pts).all())


# ---------------------------------------------------------------------------------------------------------
# make_scene


def make_scene(seed: int, n_objects: int | None = None, room=None, categories=None, colors=None) -> Scene:
    """A random furnished room, the same for the same arguments.

    n_objects: 4..10 (random when None). room: (W, D, H) metres (random when None, larger for more objects).
    categories / colors: restrict the draws to these names (from CATEGORIES / PALETTE).
    """
    rng = np.random.default_rng(seed)
    categories = tuple(categories) if categories is not None else CATEGORIES
    colors = tuple(colors) if colors is not None else tuple(PALETTE)
    for c in categories:
        if c not in CATEGORIES:
            raise V4SError(f"unknown category {c!r}; choose from {CATEGORIES}")
    for c in colors:
        if c not in PALETTE:
            raise V4SError(f"unknown colour {c!r}; choose from {tuple(PALETTE)}")
    if not categories or not colors:
        raise V4SError("categories and colors must not be empty")
    if n_objects is None:
        n_objects = int(rng.integers(4, 11))
    if not 1 <= n_objects <= 12:
        raise V4SError(f"n_objects={n_objects}: use 1..12 (the course uses 4..10); more do not fit a room")
    if room is None:
        lo = 4.6 + 0.15 * n_objects
        room = (float(rng.uniform(lo, lo + 2.5)), float(rng.uniform(lo, lo + 2.5)), float(rng.uniform(2.6, 3.1)))
    W, D, H = (float(v) for v in room)
    if min(W, D) < 3.0 or H < 2.2:
        raise V4SError(f"room {room} is too small: W and D must be >= 3 m and H >= 2.2 m")
    textures = {
        "floor": FLOOR_TEXTURES[rng.integers(len(FLOOR_TEXTURES))],
        "walls": WALL_TEXTURES[rng.integers(len(WALL_TEXTURES))],
        "floor_color": list(FLOOR_TONES[rng.integers(len(FLOOR_TONES))]),
        "wall_colors": [list(WALL_TONES[i]) for i in rng.permutation(len(WALL_TONES))[:4]],
        "ceiling_color": list(CEILING_TONE),
    }
    scene = Scene(int(seed), (W, D, H), textures, [])
    rx, ry = _ring_radii(W, D)
    ring = np.stack([W / 2 + rx * np.cos(np.linspace(0, 2 * np.pi, 96)),
                     D / 2 + ry * np.sin(np.linspace(0, 2 * np.pi, 96))], -1)
    if 2 * len(categories) * len(colors) < n_objects:
        raise V4SError(f"{n_objects} objects need more than {len(categories)} categories x {len(colors)} colours "
                       "(at most two look-alikes per scene, so that instructions can tell objects apart)")
    used: dict[tuple[str, str], int] = {}
    for _ in range(n_objects):
        obj = None
        for _draw in range(20):  # draw what the object is, then look for a place for it
            cat = categories[rng.integers(len(categories))]
            col = colors[rng.integers(len(colors))]
            if used.get((cat, col), 0) >= 2:
                continue
            local = _build(cat, rng)
            for _attempt in range(60):
                obj = _try_place(scene, local, cat, col, ring, rng)
                if obj is not None:
                    break
            if obj is not None:
                break
        if obj is None:
            raise V4SError(f"could not fit {n_objects} objects in a {W:.1f} x {D:.1f} m room (seed {seed}); "
                           "use fewer objects or a larger room")
        scene.objects.append(obj)
        used[(cat, col)] = used.get((cat, col), 0) + 1
    return scene


def _try_place(scene: Scene, local, cat, col, ring, rng) -> SceneObject | None:
    """One random placement; None if it leaves the room, blocks the scan's walkway or touches another object."""
    W, D, _ = scene.room
    if cat in AGAINST_WALL:  # back to a wall, front (local +y) facing into the room
        wall = int(rng.integers(4))
        yaw = [-math.pi / 2, math.pi / 2, 0.0, math.pi][wall]  # walls x=0, x=W, y=0, y=D
        lo, hi = SceneObject(0, cat, col, _place(local, (0, 0), yaw)).aabb
        half = (hi - lo) / 2
        t = rng.uniform(0, 1)
        xy = [(half[0] + 0.02, half[1] + t * (D - 2 * half[1])), (W - half[0] - 0.02, half[1] + t * (D - 2 * half[1])),
              (half[0] + t * (W - 2 * half[0]), half[1] + 0.02), (half[0] + t * (W - 2 * half[0]), D - half[1] - 0.02)][wall]
    else:
        yaw = float(rng.integers(4)) * math.pi / 2
        xy = (rng.uniform(0.4, W - 0.4), rng.uniform(0.4, D - 0.4))
    obj = SceneObject(len(scene.objects) + 1, cat, col, _place(local, xy, yaw), yaw)
    lo, hi = obj.aabb
    rect = np.array([[lo[0], lo[1], hi[0], hi[1]]])
    if lo[0] < 0.01 or lo[1] < 0.01 or hi[0] > W - 0.01 or hi[1] > D - 0.01:
        return None
    if (_rect_distance(ring, rect) < CAMERA_CLEARANCE + 0.15).any():
        return None  # keep the scan's walkway free
    others = _footprints(scene)
    if len(others) and _rects_overlap(rect[0], others, gap=0.15):
        return None
    return obj


def _rects_overlap(r, others, gap):
    return bool(((r[0] < others[:, 2] + gap) & (r[2] > others[:, 0] - gap)
                 & (r[1] < others[:, 3] + gap) & (r[3] > others[:, 1] - gap)).any())


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


# ---------------------------------------------------------------------------------------------------------
# Trajectories


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def scan_trajectory(scene: Scene, n_frames: int, seed: int) -> np.ndarray:
    """The context scan: walk once around an ellipse about the room centre, looking across the room and
    swinging the view left and right, so every object is seen (checked by rendering; more swing if not)."""
    if n_frames < 2:
        raise V4SError(f"scan_trajectory needs n_frames >= 2, got {n_frames}")
    from .render import render  # render imports world; import here to keep the module graph acyclic

    rng = np.random.default_rng([seed, 1])
    W, D, H = scene.room
    rx, ry = _ring_radii(W, D)
    c = np.array([W / 2, D / 2])
    phi0, sign = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    best, best_seen = None, -1
    for swing_deg, swings in ((30, 2), (45, 3), (60, 3), (75, 4)):
        s = np.linspace(0, 1, n_frames)
        phi = phi0 + sign * 2 * np.pi * s
        pos = c + np.stack([rx * np.cos(phi), ry * np.sin(phi)], -1)
        yaw = np.arctan2(c[1] - pos[:, 1], c[0] - pos[:, 0]) + np.radians(swing_deg) * np.sin(2 * np.pi * swings * s)
        pitch = np.radians(-18 + 6 * np.sin(2 * np.pi * 1.5 * s))
        eye_z = EYE_HEIGHT + 0.05 * np.sin(2 * np.pi * 3 * s)
        c2w = np.stack([pose_from_yaw_pitch([x, y, z], a, p) for (x, y), z, a, p in zip(pos, eye_z, yaw, pitch)])
        if not scene.objects:
            return c2w
        if not is_free(scene, pos).all():
            raise V4SError("the scan ring crosses an object: this scene was not made by make_scene (or was edited); "
                           "keep objects off the ellipse around the room centre")
        out = render(scene, c2w, intrinsics(64, 40), 64, 40, antialias=1)
        seen = np.isin(np.arange(1, len(scene.objects) + 1), np.unique(out.instance)).sum()
        if seen == len(scene.objects):
            return c2w
        if seen > best_seen:
            best, best_seen = c2w, seen
    return best  # some object is hidden from everywhere on the ring; annotations will show it unseen


def _grid_path(scene: Scene, a, b, res: float = 0.1):
    """A shortest free path from a to b on a grid (A*), shortened by line-of-sight, as (k, 2) waypoints."""
    if _segment_free(scene, a, b):
        return np.array([a, b])
    W, D, _ = scene.room
    nx, ny = int(W / res) + 1, int(D / res) + 1
    gx, gy = np.meshgrid(np.arange(nx) * res, np.arange(ny) * res, indexing="ij")
    free = is_free(scene, np.stack([gx, gy], -1))
    start = (int(round(a[0] / res)), int(round(a[1] / res)))
    goal = (int(round(b[0] / res)), int(round(b[1] / res)))
    free[start] = free[goal] = True
    dist, prev, heap = {start: 0.0}, {}, [(0.0, start)]
    moves = [(dx, dy, math.hypot(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    while heap:
        _, cur = heapq.heappop(heap)
        if cur == goal:
            break
        for dx, dy, w in moves:
            nb = (cur[0] + dx, cur[1] + dy)
            if 0 <= nb[0] < nx and 0 <= nb[1] < ny and free[nb]:
                nd = dist[cur] + w
                if nd < dist.get(nb, np.inf):
                    dist[nb], prev[nb] = nd, cur
                    heapq.heappush(heap, (nd + math.hypot(goal[0] - nb[0], goal[1] - nb[1]), nb))
    if goal not in dist:
        return None
    cells = [goal]
    while cells[-1] != start:
        cells.append(prev[cells[-1]])
    pts = [np.asarray(a, float)] + [np.array(c, float) * res for c in cells[::-1][1:-1]] + [np.asarray(b, float)]
    out, i = [pts[0]], 0  # string pulling: jump to the farthest waypoint in sight
    while i < len(pts) - 1:
        j = len(pts) - 1
        while j > i + 1 and not _segment_free(scene, pts[i], pts[j]):
            j -= 1
        out.append(pts[j])
        i = j
    return np.array(out)


def _along(path: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points at arc-length fractions s of a polyline."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])
    if cum[-1] == 0:
        return np.repeat(path[:1], len(s), 0)
    d = np.clip(s, 0, 1) * cum[-1]
    return np.stack([np.interp(d, cum, path[:, k]) for k in range(2)], -1)


def comfortable_distance(obj: SceneObject) -> float:
    """Where the object fills about 40% of a 70-degree view and tall ones fit top to bottom: 1.2 to 3 m."""
    return float(np.clip(1.8 * max(obj.size[0], obj.size[1], 0.8 * obj.size[2]), 1.2, 3.0))


def _end_pose(scene: Scene, target: SceneObject, rng) -> np.ndarray:
    from .render import render, boxes_from_instance

    c = target.center
    d = comfortable_distance(target) + max(target.size[:2]) / 2
    cands = []
    for scale in (1.0, 0.8, 1.2, 0.65, 1.45):
        ang = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, 24, endpoint=False)
        xy = c[:2] + d * scale * np.stack([np.cos(ang), np.sin(ang)], -1)
        cands += [look_at([x, y, EYE_HEIGHT], c) for x, y in xy[is_free(scene, xy)]]
        if len(cands) >= 8:
            break
    if not cands:
        raise V4SError(f"no free place to look at object {target.id} ({target.name}) from; the room is too crowded")
    cands = np.stack(cands)
    out = render(scene, cands, intrinsics(52, 32), 52, 32, antialias=1)
    _, visible = boxes_from_instance(out.instance, len(scene.objects), out.coverage)
    vis = visible[:, target.id - 1]
    good = np.flatnonzero(vis >= 0.999 * vis.max())
    return cands[good[rng.integers(len(good))]]


def approach_trajectory(scene: Scene, target_id: int, n_frames: int, n_hold: int, seed: int) -> np.ndarray:
    """The grounding walk: start somewhere (off the scan ring when possible, facing anywhere), walk a free path
    while turning, end with the target centred at a comfortable distance, then hold still for n_hold frames."""
    if n_frames - n_hold < 2 or n_hold < 0:
        raise V4SError(f"approach_trajectory: n_frames={n_frames}, n_hold={n_hold} leaves fewer than 2 moving frames")
    rng = np.random.default_rng([seed, 2])
    target = scene.object(target_id)
    end = _end_pose(scene, target, rng)
    end_xy = end[:2, 3]
    W, D, _ = scene.room
    rx, ry = _ring_radii(W, D)
    pts = np.stack([rng.uniform(0, W, 400), rng.uniform(0, D, 400)], -1)
    pts = pts[is_free(scene, pts)]
    far = pts[np.linalg.norm(pts - end_xy, axis=1) >= 1.5]
    pts = far if len(far) else pts
    off_ring = np.abs(np.hypot((pts[:, 0] - W / 2) / rx, (pts[:, 1] - D / 2) / ry) - 1) > 0.25
    pts = pts[off_ring] if off_ring.any() else pts
    path = None
    for p in pts:
        path = _grid_path(scene, p, end_xy)
        if path is not None:
            break
    if path is None:
        path = np.array([end_xy, end_xy])
    n_move = n_frames - n_hold
    s = _smoothstep(np.linspace(0, 1, n_move))
    xy = _along(path, s)
    ahead = _along(path, np.clip(s + 0.15, 0, 1))
    yaw0, pitch0 = rng.uniform(-np.pi, np.pi), math.radians(rng.uniform(-22, -8))
    yaw1, pitch1 = yaw_pitch(end)
    heading = np.where(np.linalg.norm(ahead - xy, axis=1) > 1e-3,
                       np.arctan2(ahead[:, 1] - xy[:, 1], ahead[:, 0] - xy[:, 0]), yaw1)
    t = np.linspace(0, 1, n_move)
    w1, w2 = _smoothstep(t / 0.25), _smoothstep((t - 0.55) / 0.45)
    yaw = yaw0 + w1 * _wrap(heading - yaw0)
    yaw = yaw + w2 * _wrap(yaw1 - yaw)
    pitch = pitch0 + _smoothstep(t) * (pitch1 - pitch0)
    c2w = [pose_from_yaw_pitch([x, y, EYE_HEIGHT], a, p) for (x, y), a, p in zip(xy[:-1], yaw[:-1], pitch[:-1])]
    c2w += [end] * (n_hold + 1)
    return np.stack(c2w)


# ---------------------------------------------------------------------------------------------------------
# Navigation commands

_MOVE = re.compile(r"^(?:move|walk|go|step)\s+(forward|forwards|backward|backwards|back|left|right)\s+"
                   r"([0-9]*\.?[0-9]+)\s*(m|meter|meters|metre|metres)$")
_TURN = re.compile(r"^(?:turn|rotate)\s+(left|right)\s+([0-9]*\.?[0-9]+)\s*(degrees|degree|deg|°)$")


@dataclass(frozen=True)
class Command:
    kind: str  # "move" | "turn"
    direction: str  # move: forward/backward/left/right; turn: left/right
    amount: float  # metres or degrees

    def __str__(self):
        return (f"move {self.direction} {self.amount:g} m" if self.kind == "move"
                else f"turn {self.direction} {self.amount:g} degrees")


def parse_command(text) -> Command:
    """'move forward 1.5 m' / 'turn left 30 degrees' -> Command; anything else raises V4SError."""
    if isinstance(text, Command):
        return text
    if not isinstance(text, str):
        raise V4SError(f"a command must be a string like 'move forward 1.5 m', got {type(text).__name__}")
    t = " ".join(text.strip().lower().rstrip(".").split())
    m = _MOVE.match(t)
    if m:
        d = {"forwards": "forward", "backwards": "backward", "back": "backward"}.get(m[1], m[1])
        amount = float(m[2])
        if not 0 < amount <= 20:
            raise V4SError(f"command {text!r}: distance must be in (0, 20] metres")
        return Command("move", d, amount)
    m = _TURN.match(t)
    if m:
        amount = float(m[2])
        if not 0 < amount <= 360:
            raise V4SError(f"command {text!r}: angle must be in (0, 360] degrees")
        return Command("turn", m[1], amount)
    raise V4SError(f"cannot parse command {text!r}; write 'move forward|backward|left|right <metres> m' "
                   "or 'turn left|right <degrees> degrees'")


def _apply(xy, yaw, cmd: Command, frac: float):
    if cmd.kind == "turn":
        return xy, yaw + (1 if cmd.direction == "left" else -1) * math.radians(cmd.amount) * frac
    ang = {"forward": 0.0, "backward": math.pi, "left": math.pi / 2, "right": -math.pi / 2}[cmd.direction] + yaw
    return xy + cmd.amount * frac * np.array([math.cos(ang), math.sin(ang)]), yaw


def navigation_trajectory(start_c2w, commands, n_frames: int) -> np.ndarray:
    """Poses (n_frames, 4, 4) that carry out the commands one after another at constant speed, frame 0 at the
    start pose and the last frame at the end. Moves stay level (height and tilt kept); turns are about z.
    Frames are shared by the commands in proportion to their length (1 m of walking ~ 60 degrees of turning)."""
    cmds = [parse_command(c) for c in commands]
    if not cmds:
        raise V4SError("navigation_trajectory needs at least one command")
    if n_frames < 2:
        raise V4SError(f"navigation_trajectory needs n_frames >= 2, got {n_frames}")
    start = np.asarray(start_c2w, float)
    if start.shape != (4, 4):
        raise V4SError(f"start_c2w must be a 4x4 camera-to-world matrix, got shape {start.shape}")
    yaw0, pitch = yaw_pitch(start)
    eye_z = start[2, 3]
    cost = np.array([c.amount if c.kind == "move" else c.amount / 60 for c in cmds])
    cum = np.concatenate([[0], np.cumsum(cost)])
    states = [(start[:2, 3].copy(), yaw0)]  # pose before each command
    for c in cmds:
        states.append(_apply(*states[-1], c, 1.0))
    out = []
    for u in np.linspace(0, cum[-1], n_frames):
        k = min(int(np.searchsorted(cum, u, side="right")) - 1, len(cmds) - 1)
        xy, yaw = _apply(*states[k], cmds[k], (u - cum[k]) / cost[k])
        out.append(pose_from_yaw_pitch([xy[0], xy[1], eye_z], yaw, pitch))
    return np.stack(out)


def random_commands(scene: Scene, seed: int, n_commands: int | None = None):
    """A start pose and a list of commands whose whole path stays in free space (room, no objects)."""
    rng = np.random.default_rng([seed, 3])
    W, D, _ = scene.room
    pts = np.stack([rng.uniform(0, W, 400), rng.uniform(0, D, 400)], -1)
    pts = pts[is_free(scene, pts)]
    if not len(pts):
        raise V4SError("no free space to start a navigation walk")
    n_commands = n_commands or int(rng.integers(2, 5))
    xy, yaw = pts[0], float(rng.uniform(-np.pi, np.pi))
    start = pose_from_yaw_pitch([xy[0], xy[1], EYE_HEIGHT], yaw, math.radians(-15))
    cmds = []
    for i in range(n_commands):
        want_move = i % 2 == 0 or rng.random() < 0.3
        options = []
        if want_move:
            for dist in rng.permutation(np.arange(0.5, 2.01, 0.25)):
                for d in ("forward", "forward", "left", "right", "backward"):
                    c = Command("move", d, float(dist))
                    nxy, _ = _apply(xy, yaw, c, 1.0)
                    if _segment_free(scene, xy, nxy):
                        options.append(c)
                if options:
                    break
        if not options:
            options = [Command("turn", d, float(a)) for d in ("left", "right") for a in (15, 30, 45, 60, 90)]
        c = options[int(rng.integers(len(options)))]
        xy, yaw = _apply(xy, yaw, c, 1.0)
        cmds.append(c)
    return start, [str(c) for c in cmds]


def describe_commands(commands) -> str:
    parts = [str(parse_command(c)) for c in commands]
    text = ", then ".join(parts)
    return text[0].upper() + text[1:] + "."


# ---------------------------------------------------------------------------------------------------------
# Instructions

TEMPLATES = ("Find the {}.", "Walk to the {} and look at it.", "Go to the {}.", "Look at the {}.",
             "Where is the {}? Take me there.", "Approach the {}.", "Show me the {}.", "Turn to face the {}.")


def describe(scene: Scene, target_id: int, rng=None) -> str:
    """A phrase that names the target uniquely: 'plant', 'blue chair', or 'chair next to the table'."""
    rng = rng if rng is not None else np.random.default_rng(0)
    t = scene.object(target_id)
    same_cat = [o for o in scene.objects if o.category == t.category and o.id != t.id]
    if not same_cat:
        return t.name if rng.random() < 0.6 else t.category
    twins = [o for o in same_cat if o.color == t.color]
    if not twins:
        return t.name
    group = [t] + twins
    anchors = sorted((o for o in scene.objects if o.category != t.category),
                     key=lambda a: np.linalg.norm(a.center[:2] - t.center[:2]))
    dist = lambda o, a: np.linalg.norm(o.center[:2] - a.center[:2])  # noqa: E731
    for a in anchors:  # the anchor whose nearest look-alike is the target
        if min(group, key=lambda o: dist(o, a)) is t:
            return f"{t.name} next to the {a.name}"
    for a in anchors:  # two look-alikes: the target is the farther one from some anchor
        if len(group) == 2 and max(group, key=lambda o: dist(o, a)) is t:
            return f"{t.name} farther from the {a.name}"
    raise V4SError(f"object {target_id} cannot be told apart from {[o.id for o in twins]}; pick another target")


def make_instruction(scene: Scene, target_id: int, rng) -> str:
    """A templated grounding instruction, e.g. 'Walk to the green plant and look at it.'"""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(describe(scene, target_id, rng))


# ---------------------------------------------------------------------------------------------------------
# Clips


@dataclass
class Clip:
    scene: Scene
    task: str  # "grounding" | "navigation"
    instruction: str
    target_id: int | None
    K: np.ndarray
    width: int
    height: int
    scan_c2w: np.ndarray  # (Ns, 4, 4)
    scan_rgb: np.ndarray  # (Ns, H, W, 3) uint8
    scan_boxes: np.ndarray  # (Ns, n_objects, 4) NaN where unseen
    scan_visible: np.ndarray  # (Ns, n_objects)
    target_c2w: np.ndarray  # (Nt, 4, 4)
    target_rgb: np.ndarray
    target_boxes: np.ndarray
    target_visible: np.ndarray
    commands: list[str] | None = None
    seed: int = 0


def make_clip(scene: Scene, task: str, clip_cfg, seed: int, target_id: int | None = None, antialias: int = 2,
              device="cpu") -> Clip:
    """Render one training/evaluation example: the context scan and the target trajectory, annotated.

    grounding: the target walk is approach_trajectory (last clip_cfg.box_frames still) and the instruction
    names target_id (random when None). navigation: random free commands; the instruction spells them out.
    """
    from .config import get_clip_config
    from .render import boxes_from_instance, render

    cfg = get_clip_config(clip_cfg)
    rng = np.random.default_rng([seed, 4])
    if task == "grounding":
        if not scene.objects:
            raise V4SError("grounding needs a scene with objects")
        if target_id is None:
            target_id = int(scene.objects[rng.integers(len(scene.objects))].id)
        scene.object(target_id)
        instruction = make_instruction(scene, target_id, rng)
        target_c2w = approach_trajectory(scene, target_id, cfg.target_frames, cfg.box_frames, seed)
        commands = None
    elif task == "navigation":
        if target_id is not None:
            raise V4SError("navigation clips have no target object; leave target_id=None")
        start, commands = random_commands(scene, seed)
        target_c2w = navigation_trajectory(start, commands, cfg.target_frames)
        instruction = describe_commands(commands)
    else:
        raise V4SError(f"task must be 'grounding' or 'navigation', got {task!r}")
    scan_c2w = scan_trajectory(scene, cfg.scan_frames, seed)
    K = intrinsics(cfg.width, cfg.height)
    n = len(scene.objects)
    # device="cuda" renders the frames on the GPU: byte-identical to the CPU (tests/test_render.py), faster
    scan = render(scene, scan_c2w, K, cfg.width, cfg.height, antialias=antialias, device=device)
    tgt = render(scene, target_c2w, K, cfg.width, cfg.height, antialias=antialias, device=device)
    sb, sv = boxes_from_instance(scan.instance, n, scan.coverage)
    tb, tv = boxes_from_instance(tgt.instance, n, tgt.coverage)
    return Clip(scene, task, instruction, target_id, K, cfg.width, cfg.height, scan_c2w, scan.rgb, sb, sv,
                target_c2w, tgt.rgb, tb, tv, commands, seed)

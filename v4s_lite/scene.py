"""The synthetic spatial world, part 1: procedural rooms (notebook 01).

Everything the model learns about space comes from videos of these rooms, so the room must give the
cues a real room gives: textured floor and walls (parallax), objects of recognisable shapes and colours,
occlusion. Conventions (docs/DESIGN.md): metres, z up, floor at z = 0, the room spans [0, W] x [0, D] x [0, H].
Cameras are in camera.py, walks in trajectories.py, words in language.py, a whole rendered clip in world.py.

    scene = make_scene(seed=0)
"""
from __future__ import annotations

import math
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


def is_strong_red(rgb):
    """The colour test reserved for the model's red box (DESIGN.md): r > 0.6 and g, b < 0.35. One colour (r, g, b) ->
    bool; an array of colours (..., 3) -> a bool array (..., )."""
    r, g, b = np.moveaxis(np.asarray(rgb, float), -1, 0)
    return (r > 0.6) & (g < 0.35) & (b < 0.35)


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


def scan_ring_radii(W: float, D: float) -> tuple[float, float]:
    """Radii (x, y) of the ellipse the context scan walks about the room centre; make_scene keeps it free."""
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


# ---------------------------------------------------------------------------------------------------------
# make_scene


# long (~60 lines): the room's draws in their seeded order (size, textures, objects, placement); splitting them
# would hide that the order of the random draws is what makes a seed reproduce its room
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
    rx, ry = scan_ring_radii(W, D)
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

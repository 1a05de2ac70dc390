"""Where the camera goes (notebook 01): the context scan, the approach to a target object (grounding), and
walks that follow navigation commands, all through free space (scene.is_free).

    scan_c2w = scan_trajectory(scene, 65, seed=0)
    target_c2w = approach_trajectory(scene, target_id=2, n_frames=17, n_hold=4, seed=0)
"""
from __future__ import annotations

import heapq
import math

import numpy as np

from .camera import intrinsics, look_at, pose_from_yaw_pitch, yaw_pitch
from .language import Command, parse_command
from .render import boxes_from_instance, render
from .scene import EYE_HEIGHT, Scene, SceneObject, is_free, scan_ring_radii
from .utils import V4SError

# ---------------------------------------------------------------------------------------------------------
# Trajectories


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


SCAN_RULES = ("random", "canonical")


def scan_trajectory(scene: Scene, n_frames: int, seed: int, rule: str = "random") -> np.ndarray:
    """The context scan: walk once around an ellipse about the room centre, looking across the room and
    swinging the view left and right, so every object is seen (checked by rendering; more swing if not).
    rule: "random" (the ring's starting angle and direction drawn from the seed, as a recording starts anywhere)
    or "canonical" (every scan starts on the room's +x side and walks counter-clockwise, so a context frame's index
    tells where on the ring its camera stands: the model need not infer the scan's camera motion, only find the
    views that show the target; a simplification the paper does not make)."""
    if rule not in SCAN_RULES:
        raise V4SError(f"scan rule must be one of {SCAN_RULES}, got {rule!r}")
    if n_frames < 2:
        raise V4SError(f"scan_trajectory needs n_frames >= 2, got {n_frames}")
    rng = np.random.default_rng([seed, 1])
    W, D, H = scene.room
    rx, ry = scan_ring_radii(W, D)
    c = np.array([W / 2, D / 2])
    phi0, sign = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    if rule == "canonical":  # drawn anyway, so nothing else drawn from this stream moves
        phi0, sign = 0.0, 1.0
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


def _free_pose(scene: Scene, pose, name: str) -> np.ndarray:
    """A given walk pose (approach_trajectory's `start` / `end`) as float (4, 4), or a V4SError saying why not."""
    pose = np.asarray(pose, dtype=float)
    if pose.shape != (4, 4) or not is_free(scene, pose[None, :2, 3]).all():
        raise V4SError(f"approach_trajectory: {name} must be a free camera pose (4, 4) in the room; got shape "
                       f"{pose.shape}" + ("" if pose.shape != (4, 4) else f" at {pose[:2, 3].round(2)}"))
    return pose


def approach_trajectory(scene: Scene, target_id: int, n_frames: int, n_hold: int, seed: int,
                        start: np.ndarray | None = None, end: np.ndarray | None = None) -> np.ndarray:
    """The grounding walk: start somewhere (off the scan ring when possible, facing anywhere), walk a free path
    while turning, end with the target centred at a comfortable distance, then hold still for n_hold frames.
    `start`: a camera pose (4, 4) to start from instead, e.g. one of the scan's (world.make_clip(start="scan")):
    the walk's first frame is then that view exactly. `end`: a camera pose (4, 4) to end at instead, e.g. the scan's
    view that frames the target best (world.make_clip(end="scan")): the held frames are then that view exactly."""
    if n_frames - n_hold < 2 or n_hold < 0:
        raise V4SError(f"approach_trajectory: n_frames={n_frames}, n_hold={n_hold} leaves fewer than 2 moving frames")
    rng = np.random.default_rng([seed, 2])
    target = scene.object(target_id)
    chosen = _end_pose(scene, target, rng)  # drawn anyway, so the rest of the walk draws the same numbers
    end = chosen if end is None else _free_pose(scene, end, "end")
    end_xy = end[:2, 3]
    W, D, _ = scene.room
    rx, ry = scan_ring_radii(W, D)
    if start is not None:
        start = _free_pose(scene, start, "start")
        pts = start[None, :2, 3]
    else:
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
        path = np.array([end_xy, end_xy]) if start is None else np.array([start[:2, 3], end_xy])
    n_move = n_frames - n_hold
    s = _smoothstep(np.linspace(0, 1, n_move))
    xy = _along(path, s)
    ahead = _along(path, np.clip(s + 0.15, 0, 1))
    if start is None:
        yaw0, pitch0 = rng.uniform(-np.pi, np.pi), math.radians(rng.uniform(-22, -8))
    else:
        yaw0, pitch0 = yaw_pitch(start)
    yaw1, pitch1 = yaw_pitch(end)
    heading = np.where(np.linalg.norm(ahead - xy, axis=1) > 1e-3,
                       np.arctan2(ahead[:, 1] - xy[:, 1], ahead[:, 0] - xy[:, 0]), yaw1)
    t = np.linspace(0, 1, n_move)
    w1, w2 = _smoothstep(t / 0.25), _smoothstep((t - 0.55) / 0.45)
    yaw = yaw0 + w1 * _wrap(heading - yaw0)
    yaw = yaw + w2 * _wrap(yaw1 - yaw)
    pitch = pitch0 + _smoothstep(t) * (pitch1 - pitch0)
    c2w = [pose_from_yaw_pitch([x, y, EYE_HEIGHT], a, p) for (x, y), a, p in zip(xy[:-1], yaw[:-1], pitch[:-1])]
    if start is not None:
        c2w[0] = start  # the given view itself (a scan's eye height varies by a few cm around EYE_HEIGHT)
    c2w += [end] * (n_hold + 1)
    return np.stack(c2w)


def _segment_free(scene: Scene, a, b, step: float = 0.05) -> bool:
    n = max(2, int(np.ceil(np.linalg.norm(np.subtract(b, a)) / step)) + 1)
    pts = np.linspace(a, b, n)
    return bool(is_free(scene, pts).all())


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

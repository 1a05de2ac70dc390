"""Camera poses as five numbers, and the arithmetic of a walk of them (notebook 08).

A roll-free pose is (x, y, z, yaw, pitch): what the pose estimator searches over (`poses.py`) and what the judge
compares. Here, for whole walks at once: the conversions to and from camera-to-world matrices, the errors between
two walks, the path through per-frame candidates that walks rather than teleports (`smooth_path`), what a codec
that shows one picture per group of frames can show (`codec_aligned`, `codec_blend`), and whether the camera
moves at all (`dynamic_degree`). Plain numpy: no renders.
"""
from __future__ import annotations

import numpy as np


def pose_params(c2w) -> np.ndarray:
    """(N, 4, 4) roll-free poses -> (N, 5) [x, y, z, yaw, pitch] (radians)."""
    c2w = np.asarray(c2w, float).reshape(-1, 4, 4)
    f = c2w[:, :3, 2]
    return np.stack([c2w[:, 0, 3], c2w[:, 1, 3], c2w[:, 2, 3], np.arctan2(f[:, 1], f[:, 0]),
                     np.arcsin(np.clip(f[:, 2], -1, 1))], -1)


def pose_matrices(p) -> np.ndarray:
    """(N, 5) [x, y, z, yaw, pitch] -> (N, 4, 4) c2w, OpenCV camera axes, no roll (camera.pose_from_yaw_pitch)."""
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


# A camera at walking pace moves about 0.3 m and turns up to ~15 degrees a frame (trajectories.approach_trajectory); the
# path through the candidates is free below these moves between two kept (distinct) frames and pays beyond them.
FREE_MOVE_M, FREE_TURN_RAD = 1.5, 1.0
TELEPORT_COST = 0.02  # residual units per metre (and per radian) beyond the free move


def smooth_path(candidates: list, costs: list, free_move: float = FREE_MOVE_M, free_turn: float = FREE_TURN_RAD,
                price: float = TELEPORT_COST) -> np.ndarray:
    """One pose per frame from per-frame candidates (k_i, 5) with costs (k_i,): the Viterbi path minimising the
    summed costs plus `price` x (metres beyond free_move + radians beyond free_turn) between consecutive frames."""
    total, back = np.asarray(costs[0], float), []
    for i in range(1, len(candidates)):
        a, b = candidates[i - 1], candidates[i]
        move = np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=-1)
        turn = np.abs((a[:, None, 3] - b[None, :, 3] + np.pi) % (2 * np.pi) - np.pi)
        step = total[:, None] + price * (np.maximum(move - free_move, 0) + np.maximum(turn - free_turn, 0))
        back.append(step.argmin(0))
        total = step.min(0) + np.asarray(costs[i], float)
    j = int(total.argmin())
    path = [j]
    for bk in reversed(back):
        j = int(bk[j])
        path.append(j)
    return np.stack([c[k] for c, k in zip(candidates, reversed(path))])


def codec_blend(p, spans, T: int):
    """What a codec picture shows: for kept frames (n, 5) spanning original frames `spans`, the poses of the
    frames each picture averages, as alpha (n, T) and beta (n, T, 5) with member = alpha * p + beta. A picture
    that spans exactly one codec group (frames 1 + kT .. (k + 1)T, the lite codec's decoded mean of T frames)
    averages the walk through it: its members lie on the straight line from its neighbours' times to its own
    (sub-step interpolation, the neighbours held fixed); any other kept frame is one pose (alpha 1, beta 0).
    T: frames per codec picture (the codec's `temporal_factor`); None when T <= 1 or without spans."""
    n = len(p)
    if T <= 1 or spans is None:
        return None
    alpha, beta = np.ones((n, T)), np.zeros((n, T, 5))
    group = [b - a + 1 == T and a % T == 1 for a, b in spans]

    def when(j, side):  # a neighbour's time: a group's middle, else the end of its span (a still run) facing j
        return spans[j][0] + (T - 1) / 2 if group[j] else spans[j][side]
    for j, (a, b) in enumerate(spans):
        if not group[j]:
            continue
        tj = a + (T - 1) / 2
        for m, t in enumerate(range(a, b + 1)):
            if t < tj and j > 0:
                tn, nb = when(j - 1, 1), p[j - 1]
            elif t > tj and j < n - 1:
                tn, nb = when(j + 1, 0), p[j + 1]
            else:
                continue
            c = (t - tj) / (tn - tj)
            d = np.array(nb, float) - p[j]
            d[3] = (d[3] + np.pi) % (2 * np.pi) - np.pi
            alpha[j, m], beta[j, m] = 1 - c, c * (p[j] + d)
    return alpha, beta


def codec_aligned(c2w, stride: int = 4) -> np.ndarray:
    """The pose a codec with `stride`x causal time compression can show for each frame: frame 0 alone, then the
    mean pose (positions and headings) of each group of `stride` frames. The lite codec decodes one picture per
    group, so its videos are compared with these poses, not with poses it cannot represent."""
    p = pose_params(c2w)
    out = p.copy()
    for s in range(1, len(p), stride):
        g = p[s:s + stride]
        m = g.mean(0)
        m[3] = np.arctan2(np.sin(g[:, 3]).mean(), np.cos(g[:, 3]).mean())
        out[s:s + stride] = m
    return pose_matrices(out)


def dynamic_degree(c2w, n_moving: int | None = None) -> tuple[int, float, float]:
    """(DD, path length in m, turning in degrees) of the camera over the first n_moving frames: DD = 1 when the
    camera moves at least DD_MIN_PATH_M or turns at least DD_MIN_TURN_DEG (a frozen video gets 0)."""
    p = pose_params(c2w)[:n_moving]
    path = float(np.linalg.norm(np.diff(p[:, :3], axis=0), axis=1).sum())
    dyaw = (np.diff(p[:, 3]) + np.pi) % (2 * np.pi) - np.pi
    turn = float(np.degrees(np.abs(dyaw).sum() + np.abs(np.diff(p[:, 4])).sum()))
    return int(path >= DD_MIN_PATH_M or turn >= DD_MIN_TURN_DEG), path, turn


DD_MIN_PATH_M, DD_MIN_TURN_DEG = 0.3, 20.0

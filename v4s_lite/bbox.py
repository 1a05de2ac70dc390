"""Auxiliary box frames: the red box the model learns to draw, and the detector that reads it back.

Video4Spatial appends `box_frames` frames (paper: 20 of 181) to every grounding target: the camera holds still
and a pure red (255, 0, 0) box is drawn around the target, its line thickening inward from ~1-2 px to ~7-9 px
at 416x256. Training on these frames teaches the model to *say* which object it found; at evaluation time
`detect_red_box` turns the generated pixels back into a box. Red is reserved for this: the world palette has
no colour with r > 0.6 and g, b < 0.35.

Boxes are pixel (x0, y0, x1, y1), inclusive-exclusive, float (docs/DESIGN.md).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .utils import V4SError

RED = (255, 0, 0)
# Paper line widths at 416 px wide; scaled by width / 416 for other sizes (at least 1 px, ending >= 2 px).
PAPER_WIDTH = 416
PAPER_LINE_PX = (1.5, 8.0)


def box_line_widths(n_box_frames: int, width: int) -> np.ndarray:
    """Line thickness (int px) of each box frame: grows linearly from ~1.5 px to ~8 px at 416 px wide."""
    scale = width / PAPER_WIDTH
    start = max(1.0, PAPER_LINE_PX[0] * scale)
    end = max(2.0, PAPER_LINE_PX[1] * scale)
    return np.round(np.linspace(start, end, n_box_frames)).astype(int)


def _as_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise V4SError(f"frames must be uint8 (N, H, W, 3); got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise V4SError(f"frames must be uint8 (N, H, W, 3) in [0, 255]; got dtype {frames.dtype}. "
                       "Convert with (x * 255).round().clip(0, 255).astype(np.uint8) first.")
    return frames


def _pixel_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """Float inclusive-exclusive box -> integer pixel bounds clipped to the image."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = max(0, x0), min(width, x1)
    y0, y1 = max(0, y0), min(height, y1)
    return x0, y0, x1, y1


def draw_box(frame: np.ndarray, box, thickness: int, color=RED) -> np.ndarray:
    """Draw a rectangle outline in place; the outer edge is the box, the line grows inward."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = _pixel_box(box, w, h)
    t = int(max(1, min(thickness, (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2)))  # a tiny box becomes a filled patch
    frame[y0:y0 + t, x0:x1] = color
    frame[y1 - t:y1, x0:x1] = color
    frame[y0:y1, x0:x0 + t] = color
    frame[y0:y1, x1 - t:x1] = color
    return frame


def bbox_frames(frames, boxes, n_box_frames: int, widths=None) -> np.ndarray:
    """Draw the auxiliary red box on the last `n_box_frames` frames (a copy; the input is not changed).

    frames: uint8 (N, H, W, 3), the camera already holding still over the last frames (the trajectory's job).
    boxes:  one box (4,) for all box frames, or per-frame boxes: (n_box_frames, 4) or (N, 4) (the last rows used).
    widths: line thickness per box frame (default `box_line_widths`, thickening over the box frames).
    """
    frames = _as_frames(frames)
    n, h, w = frames.shape[:3]
    if not 0 < n_box_frames <= n:
        raise V4SError(f"n_box_frames={n_box_frames} must be in 1..{n} (the number of frames given)")
    boxes = np.asarray(boxes, dtype=float)
    if boxes.shape == (4,):
        boxes = np.repeat(boxes[None], n_box_frames, axis=0)
    elif boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.shape[0] in (n_box_frames, n):
        boxes = boxes[-n_box_frames:]
    else:
        raise V4SError(f"boxes must be (4,), ({n_box_frames}, 4) or ({n}, 4); got shape {boxes.shape}")
    if np.isnan(boxes).any():
        bad = np.nonzero(np.isnan(boxes).any(1))[0].tolist()
        raise V4SError(f"box frames {bad} have no box (NaN): the target must be visible while the camera holds "
                       "still. Use a trajectory that ends looking at the target (trajectories.approach_trajectory).")
    ints = np.array([_pixel_box(b, w, h) for b in boxes])
    empty = (ints[:, 2] <= ints[:, 0]) | (ints[:, 3] <= ints[:, 1])
    if empty.any():
        raise V4SError(f"a box is empty inside the {w}x{h} image: {boxes[empty][0].tolist()}; "
                       "boxes are (x0, y0, x1, y1) in pixels with x0 < x1, y0 < y1")
    if widths is None:
        widths = box_line_widths(n_box_frames, w)
    widths = np.broadcast_to(np.asarray(widths, int), (n_box_frames,))
    out = frames.copy()
    for i in range(n_box_frames):
        draw_box(out[n - n_box_frames + i], boxes[i], int(widths[i]))
    return out


# --------------------------------------------------------------------------------------------------------------
# Detection, in two steps.
# 1. Thin red structure: redness minus its morphological opening (a "top-hat"). The opening wipes out anything
#    thinner than its window (a box line, even blurred by a codec) and keeps filled regions, so a red-ish object
#    cancels out while the box's outline stays.
# 2. The rectangle: candidate edges are the peaks of the row and column sums of that map; each candidate
#    rectangle scores the mean of the map along its outline minus the larger of the means on a ring just outside
#    it and on a ring deeper inside than the thickest line. That contrast is the confidence: ~1 for a crisp
#    (255, 0, 0) box, ~0.3-0.6 after the lite codec's blur, < 0.25 without a box.

def redness(frames: np.ndarray) -> np.ndarray:
    """How much redder than green and blue, in [0, 1]: 1 for (255, 0, 0), ~a for red mixed in at fraction a."""
    f = frames.astype(np.float32) / 255.0
    return np.clip(f[..., 0] - np.maximum(f[..., 1], f[..., 2]), 0.0, 1.0)


def thin_red(frames: np.ndarray, window: int) -> np.ndarray:
    """Redness of structures thinner than `window` px: redness - opening(redness), float32 (N, H, W)."""
    q = torch.from_numpy(redness(frames))[:, None]
    pad = window // 2
    eroded = -F.max_pool2d(F.pad(-q, (pad,) * 4, mode="replicate"), window, stride=1)
    opened = F.max_pool2d(F.pad(eroded, (pad,) * 4, mode="replicate"), window, stride=1)
    return (q - opened)[:, 0].numpy()


def _peaks(profile: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest local maxima; a plateau (a thick or blurred line) gives its two ends."""
    p = np.concatenate([[-1.0], profile, [-1.0]])
    left, mid, right = p[:-2], p[1:-1], p[2:]
    is_peak = (mid >= left) & (mid >= right) & ((mid > left) | (mid > right)) & (profile > 0)
    idx = np.nonzero(is_peak)[0]
    return np.sort(idx[np.argsort(-profile[idx], kind="stable")[:k]])


def _outline_means(q: np.ndarray, x0, y0, x1, y1, off):
    """Mean of q on the outline of boxes (arrays) grown by `off` px (off < 0: shrunk).

    Sides that fall outside the image are left out (a box near the border is judged by its other sides).
    """
    h, w = q.shape
    row_cs = np.concatenate([np.zeros((h, 1)), np.cumsum(q, 1)], 1)  # row_cs[y, x] = sum q[y, :x]
    col_cs = np.concatenate([np.zeros((1, w)), np.cumsum(q, 0)], 0)  # col_cs[y, x] = sum q[:y, x]
    ax0, ay0, ax1, ay1 = x0 - off, y0 - off, x1 - 1 + off, y1 - 1 + off  # outline pixel columns / rows
    cx0, cy0, cx1, cy1 = (np.clip(v, 0, m - 1) for v, m in ((ax0, w), (ay0, h), (ax1, w), (ay1, h)))
    ok = (ax1 > ax0) & (ay1 > ay0)
    sides = [  # (inside the image?, sum, count)
        (ay0 >= 0, row_cs[cy0, cx1 + 1] - row_cs[cy0, cx0], cx1 - cx0 + 1),
        (ay1 < h, row_cs[cy1, cx1 + 1] - row_cs[cy1, cx0], cx1 - cx0 + 1),
        (ax0 >= 0, col_cs[cy1 + 1, cx0] - col_cs[cy0, cx0], cy1 - cy0 + 1),
        (ax1 < w, col_cs[cy1 + 1, cx1] - col_cs[cy0, cx1], cy1 - cy0 + 1),
    ]
    total = sum(np.where(v & ok, s, 0.0) for v, s, _ in sides)
    count = sum(np.where(v & ok, c, 0) for v, _, c in sides)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _detect_one(t: np.ndarray, k: int, min_side: int, gap: int, deep: int):
    h, w = t.shape
    mask = t * (t > 0.08)  # faint red from noise and shading should not make edge peaks
    ys, xs = _peaks(mask.sum(1), k), _peaks(mask.sum(0), k)
    y0, y1 = [a.ravel() for a in np.meshgrid(ys, ys + 1, indexing="ij")]
    x0, x1 = [a.ravel() for a in np.meshgrid(xs, xs + 1, indexing="ij")]
    ky, kx = (y1 - y0) >= min_side, (x1 - x0) >= min_side
    if not ky.any() or not kx.any():
        return None, 0.0
    Y0, X0 = [a.ravel() for a in np.meshgrid(y0[ky], x0[kx], indexing="ij")]
    Y1, X1 = [a.ravel() for a in np.meshgrid(y1[ky], x1[kx], indexing="ij")]
    edge = _outline_means(t, X0, Y0, X1, Y1, 0)
    outside = np.maximum(_outline_means(t, X0, Y0, X1, Y1, gap), _outline_means(t, X0, Y0, X1, Y1, gap + 1))
    # A filled thin red thing (a strip narrower than the top-hat window) has a red outline too, but also a red
    # inside: look deeper than the thickest line (a small box gets the deepest ring it has).
    inset = np.maximum(1, np.minimum(deep, (np.minimum(X1 - X0, Y1 - Y0) - 2) // 2))
    inside = _outline_means(t, X0, Y0, X1, Y1, -inset)
    score = edge - np.maximum(outside, inside)
    best = int(np.argmax(score))
    box = np.array([X0[best], Y0[best], X1[best], Y1[best]])
    # A thick or blurred line offers parallel candidate edges that score alike: the box is the outer one. Move each
    # side outward while the next line is at least half as red as the side itself (at most `gap` px).
    def side(b, k):
        return (t[b[1], b[0]:b[2]], t[b[1]:b[3], b[0]], t[b[3] - 1, b[0]:b[2]], t[b[1]:b[3], b[2] - 1])[k]
    for k, (i, step) in enumerate(((1, -1), (0, -1), (3, 1), (2, 1))):  # top, left, bottom, right
        level = 0.5 * side(box, k).mean()
        for _ in range(gap):
            b = box.copy()
            b[i] += step
            if b[0] < 0 or b[1] < 0 or b[2] > w or b[3] > h or side(b, k).mean() < level:
                break
            box = b
    return box.astype(float), float(score[best])


def _sizes(width: int) -> tuple[int, int, int, int]:
    """(gap, deep, window, min_side) in px, relative to the lite 104 px width where the codec averages 4x4 pixels."""
    gap = max(2, int(np.ceil(width / 26)))  # the outside ring clears a line blurred by the codec
    deep = gap + int(np.ceil(PAPER_LINE_PX[1] * width / PAPER_WIDTH))  # past the thickest line and its blur
    return gap, deep, 2 * deep + 1, max(4, int(round(0.06 * width)))


def red_box_mask(frames, boxes=None) -> np.ndarray:
    """bool (N, H, W): the pixels of the drawn red box (its thin red line and the blur around it), to leave out
    when comparing a frame with the room. Only near the detected box (`boxes` from detect_red_box, else detected
    here), so the thin red speckle of a noisy frame is not excused."""
    frames = _as_frames(frames)
    n, h, w = frames.shape[:3]
    if boxes is None:
        boxes, _ = detect_red_box(frames)
    gap, deep, window, _ = _sizes(w)
    thin = thin_red(frames, window) > 0.1
    mask = np.zeros((n, h, w), bool)
    for i, box in enumerate(np.asarray(boxes, float)):
        if np.isnan(box).any():
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        band = np.zeros((h, w), bool)
        band[max(0, y0 - gap):y1 + gap, max(0, x0 - gap):x1 + gap] = True
        band[y0 + deep:max(y0 + deep, y1 - deep), x0 + deep:max(x0 + deep, x1 - deep)] = False
        mask[i] = thin[i] & band
    mask = torch.from_numpy(mask).float()[:, None]
    return (F.max_pool2d(mask, 3, stride=1, padding=1)[:, 0] > 0).numpy()  # one more pixel for the blur's tail


def detect_red_box(frames, min_confidence: float = 0.25, max_candidates: int = 16):
    """Find the red box in each frame.

    Returns (boxes (N, 4) float, NaN where no box; confidence (N,) in [0, 1]). The confidence is how much redder
    the box outline is than the rings just outside and deep inside it, after removing filled red regions (see
    `thin_red`); frames under `min_confidence` get NaN boxes. Boxes are the outline's outer edge, like the drawn box.
    """
    frames = _as_frames(frames)
    n, h, w = frames.shape[:3]
    gap, deep, window, min_side = _sizes(w)
    t = thin_red(frames, window).astype(np.float64)
    boxes = np.full((n, 4), np.nan)
    conf = np.zeros(n)
    for i in range(n):
        box, c = _detect_one(t[i], max_candidates, min_side, gap, deep)
        conf[i] = float(np.clip(c, 0.0, 1.0))
        if box is not None and conf[i] >= min_confidence:
            boxes[i] = box
    return boxes, conf


# Colours this check does not read: a rendered colour is its albedo times a shade <= 1 (scene.py), so white, gray and
# black differ only in brightness, and shaded they look like the room's muted walls and floors
NEUTRAL = ("white", "gray", "black")


def box_colour_share(frames, box, colour: str) -> float:
    """What the drawn box holds, read from the pixels alone: the share of the pixels inside `box` (x0, y0, x1, y1;
    its outline and any strong red left out) whose colour is `colour` (a scene.PALETTE name) rather than another
    palette colour or the room's walls, floor and ceiling. Each pixel gets the class whose albedo, scaled by a shade
    in [0, 1], comes nearest. A lite stand-in for asking an image model "is the green plant in the box?": no ground
    truth, so repeated sampling may use it to pick a try. A `NEUTRAL` colour cannot be told from the room by colour:
    NaN (not measured). frames: uint8 (N, H, W, 3), e.g. the box frames; box: None or NaN -> 0.0 (nothing marked)."""
    from .scene import CEILING_TONE, FLOOR_TONES, PALETTE, WALL_TONES, is_strong_red

    if colour not in PALETTE:
        raise V4SError(f"unknown colour {colour!r}; choose from {tuple(PALETTE)}")
    if colour in NEUTRAL:
        return float("nan")
    frames = _as_frames(frames)
    if box is None or np.isnan(np.asarray(box, float)).any():
        return 0.0
    n, h, w = frames.shape[:3]
    x0, y0, x1, y1 = _pixel_box(box, w, h)
    line = int(np.ceil(PAPER_LINE_PX[1] * w / PAPER_WIDTH))  # the thickest outline, and its blur, stay out
    x0, y0, x1, y1 = x0 + line, y0 + line, x1 - line, y1 - line
    if x1 <= x0 or y1 <= y0:
        return 0.0
    px = frames[:, y0:y1, x0:x1].reshape(-1, 3).astype(np.float64) / 255.0
    px = px[~is_strong_red(px)]  # the box's own red
    if not len(px):
        return 0.0
    names = list(PALETTE) + ["room"] * (len(WALL_TONES) + len(FLOOR_TONES) + 1)
    albedo = np.array(list(PALETTE.values()) + list(WALL_TONES) + list(FLOOR_TONES) + [CEILING_TONE])
    shade = np.clip(px @ albedo.T / (albedo ** 2).sum(1), 0.0, 1.0)  # (pixels, classes): the best shade of each
    err = np.linalg.norm(px[:, None, :] - shade[..., None] * albedo[None], axis=2)
    return float((np.array(names)[err.argmin(1)] == colour).mean())


def box_iou(a, b) -> np.ndarray:
    """IoU of boxes (..., 4) with boxes (..., 4); NaN where either is NaN."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area(a) + area(b) - inter)

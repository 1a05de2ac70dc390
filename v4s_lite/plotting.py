"""Shared figures for the notebooks: inline videos, frame strips with boxes, a top-down room map.

Figures are small on purpose (notebooks are committed with their outputs and must stay under 2 MB) but readable:
DPI and text of at least 9 pt (FONT).
"""
from __future__ import annotations

import base64
import os
import tempfile

import numpy as np

from .utils import V4SError

DPI = 100  # every figure made here; Colab and old matplotlib-inline default to 72
FONT = 9    # the smallest text, in points


def _frames(frames) -> np.ndarray:
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise V4SError(f"frames must be (N, H, W, 3), got shape {f.shape}")
    if f.dtype != np.uint8:  # accept float in [0, 1] or [-1, 1]
        f = np.clip((f + 1) / 2 if f.min() < 0 else f, 0, 1)
        f = (f * 255 + 0.5).astype(np.uint8)
    return f


def video_html(frames, fps: int = 8, width: int | None = None, crf: int = 23) -> str:
    """An HTML5 <video> tag with the frames embedded as H.264 mp4 (tens of KB for a lite clip; crf: lower is
    sharper and larger) and the first frame as its poster. It plays in an untrusted notebook too (see below)."""
    import imageio.v2 as imageio

    f = _frames(frames)
    n, h, w, _ = f.shape
    if h % 2 or w % 2:  # H.264 in yuv420p needs even sizes
        f = np.pad(f, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.mp4")
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=None, macro_block_size=1,
                                pixelformat="yuv420p", ffmpeg_params=["-crf", str(crf), "-threads", "1"]) as wr:
            for frame in f:
                wr.append_data(frame)
        data = base64.b64encode(open(path, "rb").read()).decode()
    width = width or 3 * w
    # The data URL sits on <video> itself, not on a <source> child: JupyterLab sanitises the HTML of an untrusted
    # notebook (every freshly opened committed one) and strips <source src>, leaving an empty player, while it
    # keeps <video src>. The poster, the first frame as a PNG, is the static fallback where the video cannot play.
    return (f'<video width="{width}" controls loop autoplay muted playsinline src="data:video/mp4;base64,{data}" '
            f'poster="data:image/png;base64,{_png_base64(f[0])}"></video>')


def _png_base64(frame) -> str:
    import io

    import imageio.v2 as imageio

    buf = io.BytesIO()
    imageio.imwrite(buf, frame, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def show_video(frames, fps: int = 8, width: int | None = None, crf: int = 23):
    """Display frames (N, H, W, 3) as a small looping inline video (IPython HTML object)."""
    from IPython.display import HTML

    return HTML(video_html(frames, fps, width, crf))


def _box_patch(ax, box, color, lw=1.2, label=None, slot=0):
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    # pixel (i, j) spans [i, i+1): imshow draws pixel centres at integers, so shift by -0.5
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=color, lw=lw))
    if label:  # inside the box, the first label at its top, the next at its bottom: no overlap with the title
        top = slot % 2 == 0
        ax.text(x0, y0 if top else y1 - 1, label, color=color, fontsize=FONT, va="top" if top else "bottom",
                ha="left", clip_on=True, bbox=dict(fc="black", alpha=0.45, pad=0.5, lw=0))


def frame_strip(frames, indices=None, n: int = 8, boxes=None, labels=None, titles=None, box_color="cyan",
                scale: float = 1.6):
    """A row of frames (evenly spaced, or `indices`), optionally with boxes.

    boxes: (N, 4) one box per frame, or (N, K, 4) several; NaN rows are skipped. labels: K names for the boxes;
    box_color: one colour, or K.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    f = _frames(frames)
    idx = list(indices) if indices is not None else np.linspace(0, len(f) - 1, min(n, len(f))).round().astype(int).tolist()
    h, w = f.shape[1:3]
    fig, axes = plt.subplots(1, len(idx), figsize=(scale * len(idx) * w / max(h, w) * 1.2, scale), squeeze=False,
                             dpi=DPI)
    for k, (ax, i) in enumerate(zip(axes[0], idx)):
        ax.imshow(f[i], interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(titles[k] if titles is not None else f"frame {i}", fontsize=FONT)
        if boxes is not None:
            b = np.asarray(boxes[i], float).reshape(-1, 4)
            for j, bb in enumerate(b):
                if not np.isnan(bb).any():
                    color = box_color[j] if isinstance(box_color, (list, tuple)) else box_color
                    _box_patch(ax, bb, color, label=None if labels is None else labels[j], slot=j)
    fig.tight_layout(pad=0.2)
    return fig


def generation_figure(context, generated, instruction: str, boxes=None, truth=None, n: int = 8, scale: float = 1.3):
    """What a person judges a generation by, one strip per row: the context the model watched, the video it
    generated for `instruction` (the red box it drew outlined in cyan: `boxes`, from `bbox.detect_red_box`),
    and optionally the ground-truth walk (`truth`). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    rows = [("context (non-contiguous chunks of the scan)", _frames(context), None),
            (f'generated: "{instruction}"', _frames(generated), boxes)]
    if truth is not None:
        rows.append(("ground truth", _frames(truth), None))
    h, w = rows[0][1].shape[1:3]
    panel = scale * w / max(h, w) * 1.05  # inches per frame; each row adds room for its title
    fig, axes = plt.subplots(len(rows), n, figsize=(panel * n, len(rows) * (panel * h / w + 0.3)),
                             squeeze=False, dpi=DPI, gridspec_kw=dict(wspace=0.04, hspace=0.0),
                             subplot_kw=dict(anchor="S"))
    for r, (title, f, b) in enumerate(rows):
        idx = np.linspace(0, len(f) - 1, n).round().astype(int)
        for ax, i in zip(axes[r], idx):
            ax.imshow(f[i], interpolation="nearest")
            ax.set_axis_off()
            if b is not None and not np.isnan(b[i]).any():
                _box_patch(ax, np.asarray(b[i], float) + np.array([-1, -1, 1, 1]), "cyan", lw=0.8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.28 / fig.get_figheight())
    for r, (title, _, _) in enumerate(rows):  # each row's title just above its first frame, left-aligned
        axes[r, 0].apply_aspect()
        box = axes[r, 0].get_position()
        fig.text(box.x0, box.y1 + 0.03 / fig.get_figheight(), title, fontsize=FONT + 1, va="bottom", ha="left")
    return fig


def topdown_map(scene, trajectories=None, target_id=None, ax=None, every: int = 4, size: float = 5.0):
    """The room seen from above: object footprints in their colours (numbered by id), camera paths with
    arrows for where the camera looks.

    trajectories: {label: c2w (N, 4, 4)} (or one c2w array). Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .scene import PALETTE

    W, D, _ = scene.room
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size * D / W + 0.3), dpi=DPI)
    ax.add_patch(Rectangle((0, 0), W, D, fill=False, ec="k", lw=1.5))
    for o in scene.objects:
        lo, hi = o.aabb
        lw = 2.5 if o.id == target_id else 0.8
        ax.add_patch(Rectangle(lo[:2], *(hi - lo)[:2], fc=PALETTE[o.color], ec="k", lw=lw, alpha=0.9))
        ax.text(*o.center[:2], f"{o.id}", ha="center", va="center", fontsize=FONT,
                color="w" if sum(PALETTE[o.color]) < 1.4 else "k")
    if trajectories is not None:
        if not isinstance(trajectories, dict):
            trajectories = {"camera": trajectories}
        for (label, c2w), col in zip(trajectories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            c2w = np.asarray(c2w)
            p, fwd = c2w[:, :2, 3], c2w[:, :2, 2]
            ax.plot(p[:, 0], p[:, 1], "-", color=col, lw=1.2, label=label)
            ax.plot(*p[0], "o", color=col, ms=4)
            s = slice(None, None, every)
            ax.quiver(p[s, 0], p[s, 1], fwd[s, 0], fwd[s, 1], color=col, angles="xy", scale_units="xy",
                      scale=2.5, width=0.006)
        ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(trajectories), frameon=False)
    ax.set_xlim(-0.2, W + 0.2)
    ax.set_ylim(-0.2, D + 0.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    return ax


def context_attention_figure(chunk_frames, shares: dict, visible, chance=None, scene=None, scan_c2w=None,
                             target_id=None, title: str | None = None):
    """Where the generated frames look (notebook 06): each context chunk's share of the attention, drawn over
    the scan's timeline with the target's visibility, and (given the scene) over the top-down map.

    chunk_frames: for each context latent frame, the scan frames it holds (e.g. [[0], [4..7], [20..23], ...]);
    shares: {label: (n_chunks,) share of the context attention per chunk} (one bar per label and chunk);
    visible: (scan_frames,) how much of the target each scan frame shows (0..1); chance: the uniform share
    (default 1/n_chunks). With `scene` and `scan_c2w`, a map beside it: the scan's camera positions, those of
    each chunk coloured by the first label's share. Returns the figure.
    """
    import matplotlib.pyplot as plt

    visible = np.asarray(visible, float)
    chunk_frames = [np.atleast_1d(np.asarray(f)) for f in chunk_frames]
    labels = list(shares)
    for k in labels:
        if len(shares[k]) != len(chunk_frames):
            raise V4SError(f"shares[{k!r}] has {len(shares[k])} values for {len(chunk_frames)} chunks")
    chance = 1 / len(chunk_frames) if chance is None else chance
    with_map = scene is not None and scan_c2w is not None
    fig, axes = plt.subplots(1, 2 if with_map else 1, figsize=(10.5 if with_map else 7.5, 3.4), dpi=DPI,
                             gridspec_kw={"width_ratios": [2.1, 1]} if with_map else None)
    ax = axes[0] if with_map else axes
    ax.fill_between(np.arange(len(visible)), 0, visible * max(max(map(max, shares.values())), chance) * 1.1,
                    step="mid", color="0.85", label="target in view (scaled)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (label, col) in enumerate(zip(labels, colors)):
        for i, f in enumerate(chunk_frames):
            lo, hi = float(f.min()), float(f.max()) + 1
            w = (hi - lo) / len(labels)
            ax.bar(lo + j * w, shares[label][i], width=w, align="edge", color=col, ec="k", lw=0.4,
                   label=label if i == 0 else None)
    ax.axhline(chance, color="k", ls="--", lw=1, label=f"chance ({chance:.2f})")
    ax.set_xlim(-1, len(visible))
    ax.set_xlabel("scan frame (the context chunks' frames)", fontsize=FONT)
    ax.set_ylabel("share of the context attention", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(labels) + 2, frameon=False)
    if title:
        ax.set_title(title, fontsize=FONT + 1)
    if with_map:
        m = axes[1]
        topdown_map(scene, target_id=target_id, ax=m)
        p = np.asarray(scan_c2w)[:, :2, 3]
        m.plot(p[:, 0], p[:, 1], "-", color="0.6", lw=0.8)
        first = np.asarray(shares[labels[0]], float)
        pts = np.concatenate([p[f] for f in chunk_frames])
        vals = np.concatenate([np.full(len(f), v) for f, v in zip(chunk_frames, first)])
        sc = m.scatter(pts[:, 0], pts[:, 1], c=vals, cmap="viridis", s=22, ec="k", lw=0.3, zorder=3)
        cb = fig.colorbar(sc, ax=m, fraction=0.046, pad=0.03)
        cb.set_label(f"{labels[0]}: share", fontsize=FONT)
        cb.ax.tick_params(labelsize=FONT)
        m.set_title("the chunks' cameras, from above", fontsize=FONT + 1)
        m.tick_params(labelsize=FONT)
    fig.tight_layout()
    return fig

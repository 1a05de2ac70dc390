"""plotting.context_attention_figure: the bars sit on the chunks' scan frames with the shares given."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from v4s_lite.plotting import context_attention_figure
from v4s_lite.scene import Scene
from v4s_lite.utils import V4SError


def bars(ax):
    from matplotlib.patches import Rectangle
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() < 10]


def test_bars_are_placed_on_the_chunks_frames_with_their_shares():
    chunks = [[0], [4, 5, 6, 7], [20, 21, 22, 23]]
    shares = {"trained": [0.2, 0.5, 0.3], "fresh": [1 / 3, 1 / 3, 1 / 3]}
    fig = context_attention_figure(chunks, shares, visible=np.r_[np.zeros(20), np.ones(9)])
    got = sorted((round(b.get_x(), 3), round(b.get_height(), 3)) for b in bars(fig.axes[0]))
    want = sorted([(0.0, 0.2), (0.5, 0.333), (4.0, 0.5), (6.0, 0.333), (20.0, 0.3), (22.0, 0.333)])
    assert got == want
    assert fig.axes[0].get_lines()[0].get_ydata()[0] == pytest.approx(1 / 3)  # the chance line


def test_map_panel_colours_the_chunks_cameras():
    scene = Scene.from_dict(_tiny_scene())
    c2w = np.tile(np.eye(4), (30, 1, 1))
    c2w[:, 0, 3] = np.linspace(0.5, 3.5, 30)
    c2w[:, 1, 3] = 1.0
    fig = context_attention_figure([[0], [4, 5]], {"m": [0.25, 0.75]}, np.zeros(30), scene=scene, scan_c2w=c2w)
    coll = fig.axes[1].collections[-1]
    assert list(coll.get_array()) == [0.25, 0.75, 0.75]
    with pytest.raises(V4SError):
        context_attention_figure([[0], [4]], {"m": [1.0]}, np.zeros(8))


def _tiny_scene():
    from v4s_lite.data import split_scene
    scene, _ = split_scene(0)
    return scene.to_dict()

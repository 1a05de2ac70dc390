"""plotting.video_html: a video that plays in a freshly opened (untrusted) notebook, with a static poster."""
import base64
import io

import imageio.v2 as imageio
import numpy as np

from v4s_lite.plotting import video_html


def test_video_data_sits_on_the_video_tag_with_a_first_frame_poster():
    frames = np.zeros((6, 16, 24, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(6)[:, None, None] * 40
    html = video_html(frames, fps=4)
    # JupyterLab's sanitiser (untrusted notebooks) strips <source src=...>: the data must be on <video>
    assert "<source" not in html and ' src="data:video/mp4;base64,' in html
    poster = html.split('poster="data:image/png;base64,')[1].split('"')[0]
    first = imageio.imread(io.BytesIO(base64.b64decode(poster)))
    assert first.shape == (16, 24, 3) and np.array_equal(first, frames[0])
    mp4 = base64.b64decode(html.split('src="data:video/mp4;base64,')[1].split('"')[0])
    assert mp4[4:8] == b"ftyp"  # an mp4 container

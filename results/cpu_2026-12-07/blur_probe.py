"""Does the judge read image quality as a wandering walk? The true walk (through the lite codec, as a model's videos
are), blurred until its PSNR against the true frames is near a generated video's (~20 dB), scored as the tables
score a model's video (the estimator comparing through the codec). The walk is the true one, so every walk check
must pass; a check that fails more often as the picture degrades is measuring the picture, not the walk.
Validation rooms only (calibration videos, never a model's output).

    python results/cpu_2026-12-07/blur_probe.py data/lite_val200/id --max-clips 40 --workers 2 --out OUT.json
"""
import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

SIGMAS = (0.0, 1.5, 3.0, 5.0)  # Gaussian blur, pixels of the 104x64 frame (0: the codec round trip alone)
KEYS = ("path_ratio", "jump_m", "jump_deg", "no_backtrack", "no_teleport", "walk", "SD", "IF@0.2", "PSNR")


def blur(frames, sigma):
    """A separable Gaussian blur of each frame (reflect padding, radius 3 sigma)."""
    import torch
    import torch.nn.functional as F

    if sigma == 0:
        return frames
    r = int(np.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    x = torch.from_numpy(np.asarray(frames, np.float32)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode="reflect")
    x = F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1)).reshape(n, c, h, w)
    return np.clip(x.permute(0, 2, 3, 1).numpy() + 0.5, 0, 255).astype(np.uint8)


def one(folder):
    import torch

    torch.set_num_threads(1)
    from v4s_lite.calibration import codec_round_trip, ground_truth_video
    from v4s_lite.codec import LiteCodec
    from v4s_lite.evaluate import room_estimator, score_clip

    meta = json.loads((Path(folder) / "meta.json").read_text())
    codec = LiteCodec()
    gt = ground_truth_video(meta)
    est = room_estimator(meta, codec, "cpu")
    through = codec_round_trip(gt, codec)  # what a model behind the codec could at best output
    out = {}
    for s in SIGMAS:
        frames = blur(through, s)
        frames[0] = through[0]  # the first frame is given to the model: kept clean
        m = score_clip(meta, frames, est, lpips=False)
        out[f"sigma {s}"] = {k: (None if m.get(k) is None else float(m[k])) for k in KEYS}
    return Path(folder).name, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data"), p.add_argument("--max-clips", type=int, default=40)
    p.add_argument("--workers", type=int, default=2), p.add_argument("--out", required=True)
    a = p.parse_args()
    folders = sorted(d for d in Path(a.data).iterdir() if (d / "meta.json").is_file())[: a.max_clips]
    with mp.get_context("spawn").Pool(a.workers) as pool:
        res = dict(pool.imap(one, folders))
    Path(a.out).write_text(json.dumps(res, indent=1))
    for s in SIGMAS:
        rows = [r[f"sigma {s}"] for r in res.values()]
        mean = lambda k: np.nanmean([np.nan if r[k] is None else r[k] for r in rows])  # noqa: E731
        print(f"sigma {s}: PSNR {mean('PSNR'):.2f} path_ratio median "
              f"{np.median([r['path_ratio'] for r in rows]):.2f} no_backtrack {mean('no_backtrack'):.3f} "
              f"no_teleport {mean('no_teleport'):.3f} walk {mean('walk'):.3f} IF@0.2 {mean('IF@0.2'):.3f} n={len(rows)}")


if __name__ == "__main__":
    main()

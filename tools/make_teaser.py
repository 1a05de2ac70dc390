"""The README's picture: the context the model watches, what the shipped lite model generates, the red box.

    python tools/make_teaser.py [--clip data/v4s-lite/clips/grounding_101000] [--out docs/teaser.png]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite.config import LITE
from v4s_lite.data import ClipDataset
from v4s_lite.sample import load_model, sample_clip


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clip", default="data/v4s-lite/clips/grounding_101000")
    p.add_argument("--out", default="docs/teaser.png")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    model, codec, text, _ = load_model("data/v4s-lite")
    folder = Path(a.clip)
    ds = ClipDataset(folder.parent, LITE, seed=a.seed)
    ex = ds[ds.folders.index(folder)]
    s = sample_clip(model, codec, text, ex, LITE, seed=a.seed)[0]
    ctx = np.asarray(ex["context"])
    rows = [("context (non-contiguous chunks of the scan)", ctx[np.linspace(0, len(ctx) - 1, 8).round().astype(int)]),
            (f'generated: "{ex["instruction"]}"', s.frames[np.linspace(0, len(s.frames) - 1, 8).round().astype(int)])]
    fig, axes = plt.subplots(2, 8, figsize=(13, 2.6))
    for r, (title, frames) in enumerate(rows):
        for c, f in enumerate(frames):
            axes[r, c].imshow(f)
            axes[r, c].axis("off")
        axes[r, 0].set_title(title, loc="left", fontsize=9)
    plt.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)
    print(f"{a.out}: {ex['instruction']}")


if __name__ == "__main__":
    main()

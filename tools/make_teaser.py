"""The README's picture: the context the model watches, what the shipped lite model generates, the red box.

    python tools/make_teaser.py [--clip data/v4s-lite/clips/grounding_101000] [--out docs/teaser.png]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch

from v4s_lite.plotting import generation_figure
from v4s_lite.sample import V4SPipeline


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clip", default="data/v4s-lite/clips/grounding_101000")
    p.add_argument("--out", default="docs/teaser.png")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    pipe = V4SPipeline.from_pretrained("data/v4s-lite", device="cpu")  # a model folder: the LITE clip shape
    ex = pipe.load_example(a.clip, seed=a.seed)
    s = pipe(ex, seed=a.seed)[0]
    fig = generation_figure(ex["context"], s.frames, ex["instruction"], boxes=s.boxes, scale=1.6)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)
    print(f"{a.out}: {ex['instruction']}")


if __name__ == "__main__":
    main()

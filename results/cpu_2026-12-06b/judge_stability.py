"""How fragile is a generated video's verdict? The same video judged as it is, and again with every pixel moved by
at most one grey level (dither: invisible, below the lite codec's own error), on this CPU.

    python results/cpu_2026-12-06b/judge_stability.py DATA OUT.json [--max-clips N] [--workers 2]

DATA: clip folders (dataset layout); the shipped model (data/v4s-lite) generates each clip's video (noise seed 0,
the tables' settings), the judge scores it three times: as is (twice: is the judge deterministic here?) and
dithered (seeded per room)."""
import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

KEYS = ("IF@0.2", "walk", "no_backtrack", "no_teleport", "stops", "fits_room", "SD", "path_ratio", "jump_m")


def one(args):
    import torch

    torch.set_num_threads(1)
    folder, model = args
    from v4s_lite.data import ClipDataset
    from v4s_lite.evaluate import score_clip
    from v4s_lite.poses import PoseEstimator
    from v4s_lite.sample import V4SPipeline
    from v4s_lite.scene import Scene

    global PIPE
    if "PIPE" not in globals():
        PIPE = V4SPipeline.from_pretrained(model, device="cpu")
    folder = Path(folder)
    ds = ClipDataset(folder.parent, PIPE.clip_config, seed=0)
    s = PIPE(ds[ds.folders.index(folder)], seed=0)[0]
    meta = json.loads((folder / "meta.json").read_text())
    est = lambda: PoseEstimator(Scene.from_dict(meta["scene"]), meta["K"], meta["width"], meta["height"],  # noqa: E731
                                degrade=PIPE.codec, device="cpu")
    frames = np.asarray(s.frames)
    rng = np.random.default_rng(meta.get("seed", 0))
    dith = np.clip(frames.astype(int) + rng.integers(-1, 2, frames.shape), 0, 255).astype(np.uint8)
    out = {}
    for name, v in (("as is", frames), ("again", frames), ("dithered", dith)):
        m = score_clip(meta, v, est(), lpips=False, marked=PIPE.marks_target)
        out[name] = {k: (None if m.get(k) is None else float(m[k])) for k in KEYS}
    return folder.name, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data"), p.add_argument("out")
    p.add_argument("--max-clips", type=int, default=0), p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default="data/v4s-lite")
    a = p.parse_args()
    folders = sorted(str(f) for f in Path(a.data).glob("*") if (f / "meta.json").is_file())
    folders = folders[:a.max_clips] if a.max_clips else folders
    with mp.get_context("spawn").Pool(a.workers) as pool:
        res = dict(pool.imap(one, [(f, a.model) for f in folders]))
    Path(a.out).write_text(json.dumps({"command": "python results/cpu_2026-12-06b/judge_stability.py " + " ".join(
        f"{x}" for x in (a.data, a.out, "--max-clips", a.max_clips, "--workers", a.workers)), "per_clip": res}, indent=1))
    n = len(res)
    for other in ("again", "dithered"):
        print(f"as is vs {other} ({n} rooms):")
        for k in KEYS:
            x = [(r["as is"][k], r[other][k]) for r in res.values() if r["as is"][k] is not None]
            if k in ("SD", "path_ratio", "jump_m"):
                d = np.abs(np.array([u - v for u, v in x]))
                print(f"  {k:12s} |difference| median {np.median(d):.3f}, max {d.max():.3f}")
            else:
                print(f"  {k:12s} verdict differs in {sum(u != v for u, v in x)} of {len(x)} rooms "
                      f"(passes as is {sum(u for u, _ in x):.0f}, {other} {sum(v for _, v in x):.0f})")


if __name__ == "__main__":
    main()

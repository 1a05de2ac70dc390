"""The judge's pose estimator (`poses.PoseEstimator`) on one clip: seconds per clip and where they go.

    v4s make-data --task grounding --split id --scenes 1 --seed 300000 --clip-config lite --device cpu \\
        --out /tmp/ps/clips
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/pose_estimator.py --clip /tmp/ps/clips/grounding_300000 \\
        --save /tmp/ps/new.npz [--compare /tmp/ps/old.npz] [--profile 25]

Scores the clip's ground-truth video (no degrade) and the ground truth through the lite codec (renders through the
same codec), as `tools/calibrate_judge.py` builds the estimator (a fresh estimator per video, its library
included). Prints seconds per video and per clip (both videos); --profile N prints cProfile's top N entries by
cumulative time; --save writes the estimated poses and residuals, --compare checks them against a saved run (the
old code's, run from a worktree at the base commit) and prints the old / new seconds ratio:

    git worktree add --detach /tmp/ps-base 2521190       # the estimator before the speed-ups
    (cd /tmp/ps-base && PYTHONPATH=/tmp/ps-base OMP_NUM_THREADS=1 taskset -c 1 \
        python /work/wt-speed/benchmarks/pose_estimator.py --save /tmp/ps/base.npz)
    PYTHONPATH=. OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/pose_estimator.py --compare /tmp/ps/base.npz

2026-12-03, one CPU core shared with other test runs, clip grounding_300000 (LITE, 25 frames), two alternating
pairs of runs: base 41.7 / 42.1 s per clip, now 24.1 / 23.1 s (1.73x / 1.82x); ground truth 16 -> 8 s, through the
codec 26 -> 16 s; poses and residuals bitwise identical to the base commit's.
"""
import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

import numpy as np
import torch

from v4s_lite.codec import LiteCodec
from v4s_lite.config import ClipConfig
from v4s_lite.calibration import codec_round_trip, ground_truth_video
from v4s_lite.poses import PoseEstimator
from v4s_lite.scene import Scene


def run(meta, device):
    scene, codec = Scene.from_dict(meta["scene"]), LiteCodec()
    gt = ground_truth_video(meta)
    videos = {"ground truth": (gt, None), "ground truth through the codec": (codec_round_trip(gt, codec), codec)}
    n_final = ClipConfig(**meta["clip_config"]).box_frames
    out, seconds = {}, {}
    for name, (frames, deg) in videos.items():
        t = time.perf_counter()
        est = PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg, device=device)
        e = est.estimate(frames, n_final=n_final)
        seconds[name] = time.perf_counter() - t
        out[name] = e
    return out, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default="/tmp/ps/clips/grounding_300000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", type=int, default=0, help="print cProfile's top N entries (cumulative)")
    ap.add_argument("--save", help="write poses, residuals and seconds to this .npz")
    ap.add_argument("--compare", help="a .npz saved by --save (e.g. from the base commit): check equality, ratio")
    a = ap.parse_args()
    torch.set_num_threads(1)
    meta = json.loads((Path(a.clip) / "meta.json").read_text())
    prof = cProfile.Profile() if a.profile else None
    if prof:
        prof.enable()
    est, seconds = run(meta, a.device)
    if prof:
        prof.disable()
    total = sum(seconds.values())
    for name, s in seconds.items():
        print(f"{name}: {s:.2f} s")
    print(f"seconds per clip ({a.device}, both videos{', under cProfile' if prof else ''}): {total:.2f}")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(a.profile)
        pstats.Stats(prof).sort_stats("tottime").print_stats(a.profile)
    if a.save:
        arrays = {}
        for i, (name, e) in enumerate(est.items()):
            arrays[f"c2w{i}"], arrays[f"res{i}"] = e.c2w, e.residual
        np.savez(a.save, seconds=total, **arrays)
    if a.compare:
        old = np.load(a.compare)
        for i, name in enumerate(est):
            dc = np.abs(old[f"c2w{i}"] - est[name].c2w).max()
            dr = np.abs(old[f"res{i}"] - est[name].residual).max()
            print(f"{name}: max |c2w old - new| {dc:.3g}, max |residual old - new| {dr:.3g}, "
                  f"identical: {bool(dc == 0 and dr == 0)}")
        print(f"old {float(old['seconds']):.2f} s / new {total:.2f} s per clip = {float(old['seconds']) / total:.2f}x")


if __name__ == "__main__":
    main()

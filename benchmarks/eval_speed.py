"""Evaluation speed and pose accuracy on ground-truth videos (v4s_lite.evaluate).

    python benchmarks/eval_speed.py [--scenes 4] [--threads 2] [--clip-config quick]

For each scene: make a grounding clip, render its ground-truth video with the red box, score it (`score_clip`:
pose estimation + every metric). Prints the median position / angle errors of the estimated poses, SD / IF on
ground truth, clips per minute, and the render library's build time against its baseline measured in the same run
(rendering every library view directly instead of a cube map per position).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from v4s_lite import calibration as C
from v4s_lite import evaluate as E
from v4s_lite import poses
from v4s_lite.config import get_clip_config
from v4s_lite.data import clip_meta
from v4s_lite.scene import make_scene
from v4s_lite.world import make_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the course's CPU target: 2 cores)")
    ap.add_argument("--clip-config", default="quick")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = get_clip_config(args.clip_config)

    pos, ang, sd, if_, secs, lib_cube, lib_direct = [], [], [], [], [], [], []
    for s in range(args.scenes):
        scene = make_scene(s)
        meta = json.loads(json.dumps(clip_meta(make_clip(scene, "grounding", cfg, seed=s), cfg)))
        gt = C.ground_truth_video(meta)
        est = poses.PoseEstimator(scene, meta["K"], meta["width"], meta["height"])
        t0 = time.perf_counter()
        grid, _ = est.library()
        lib_cube.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        est.render_view(grid, est.coarse)  # baseline: every library view rendered directly
        lib_direct.append(time.perf_counter() - t0)
        est._library = None  # time the whole clip, library included
        t0 = time.perf_counter()
        m = E.score_clip(meta, gt, est, lpips=False)
        secs.append(time.perf_counter() - t0)
        p, a = poses.pose_errors(m["c2w"], meta["target"]["c2w"])
        pos.append(p)
        ang.append(a)
        sd.append(m["SD"])
        if_.append(m["IF"])
        print(f"scene {s}: {len(gt)} frames, {secs[-1]:.1f} s, median pose error {np.median(p):.3f} m / "
              f"{np.median(a):.2f} deg, SD {m['SD']:.3f}, IF {m['IF']:.0f}", flush=True)
    pos, ang = np.concatenate(pos), np.concatenate(ang)
    print(f"\n{args.scenes} ground-truth clips ({cfg.target_frames} frames, {cfg.width}x{cfg.height}), "
          f"{args.threads} torch threads")
    print(f"pose error: median {np.median(pos):.3f} m / {np.median(ang):.2f} deg; 90th percentile "
          f"{np.quantile(pos, 0.9):.2f} m / {np.quantile(ang, 0.9):.1f} deg")
    print(f"grounding on ground truth: SD mean {np.mean(sd):.3f}, IF mean {np.mean(if_):.2f}")
    print(f"speed: {60 / np.median(secs):.2f} clips per minute (median {np.median(secs):.1f} s per clip, mean "
          f"{np.mean(secs):.1f} s: on a shared machine the median resists other processes' bursts)")
    print(f"render library: cube maps {np.mean(lib_cube):.2f} s vs direct views {np.mean(lib_direct):.2f} s "
          f"(x{np.mean(lib_direct) / np.mean(lib_cube):.1f} faster)")


if __name__ == "__main__":
    main()

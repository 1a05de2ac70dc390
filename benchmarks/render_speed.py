"""How fast the ray caster renders: the paper's context (337 frames at 416x256) and the course's uses.

    python benchmarks/render_speed.py                 # all torch threads (2 on the course machine)
    python benchmarks/render_speed.py --threads 2     # pin the thread count

Goal (foundation issue): 337 frames at 416x256 with antialias=2 in under 10 s on 2 CPU cores.
Baselines, measured in the same run on a few frames and scaled per frame:
  * brute force: every ray tested against every primitive (no rectangle culling), antialias=1;
  * full supersampling: every pixel cast with 2x2 rays (render at 2x size and average), instead of edges only.
Timings are wall-clock; on a shared machine run it twice and trust the lower figures.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import v4s_lite.render as R
from v4s_lite.camera import intrinsics
from v4s_lite.scene import make_scene
from v4s_lite.trajectories import scan_trajectory


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def brute_force(scene, c2w, K, w, h):
    """render() with culling switched off: every primitive's rectangle is the whole image."""
    orig = R._rects

    def full(st, cams, K_, width, height):
        r = orig(st, cams, K_, width, height)
        r[..., 0], r[..., 1], r[..., 2], r[..., 3] = 0, width, 0, height
        return r

    R._rects = full
    try:
        return R.render(scene, c2w, K, w, h, antialias=1)
    finally:
        R._rects = orig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=337)
    ap.add_argument("--width", type=int, default=416)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--baseline-frames", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = make_scene(args.seed)
    n_prims = sum(len(o.primitives) for o in scene.objects)
    c2w = scan_trajectory(scene, args.frames, args.seed)
    W, H = args.width, args.height
    K = intrinsics(W, H)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; scene seed {args.seed}: "
          f"{len(scene.objects)} objects, {n_prims} primitives")
    R.render(scene, c2w[:2], K, W, H, device=args.device)  # warm-up

    t2, out = timed(lambda: R.render(scene, c2w, K, W, H, antialias=2, device=args.device))
    t1, _ = timed(lambda: R.render(scene, c2w, K, W, H, antialias=1, device=args.device))
    paper = args.frames >= 337 and (W, H) == (416, 256)
    goal = lambda t: ("goal < 10 s: " + ("met" if t < 10 else "NOT met")) if paper else ""  # noqa: E731
    print(f"{args.frames} frames at {W}x{H}, antialias=2 (edges only): {t2:.2f} s  ({args.frames / t2:.1f} frames/s)  {goal(t2)}")
    print(f"{args.frames} frames at {W}x{H}, antialias=1:              {t1:.2f} s  ({args.frames / t1:.1f} frames/s)  {goal(t1)}")

    b = np.linspace(0, args.frames - 1, args.baseline_frames).round().astype(int)
    tb, ref = timed(lambda: brute_force(scene, c2w[b], K, W, H))
    tc, ours = timed(lambda: R.render(scene, c2w[b], K, W, H, antialias=1, device=args.device))
    assert np.array_equal(ref.instance, ours.instance), "culling changed the image"
    per_b, per_c = tb / len(b), tc / len(b)
    print(f"brute force (no culling), antialias=1: {per_b * 1000:.0f} ms/frame vs culled {per_c * 1000:.0f} ms/frame "
          f"-> culling is {per_b / per_c:.1f}x faster (identical instance buffers)")
    K2 = intrinsics(2 * W, 2 * H)
    ts, _ = timed(lambda: R.render(scene, c2w[b], K2, 2 * W, 2 * H, antialias=1, device=args.device))
    ta, _ = timed(lambda: R.render(scene, c2w[b], K, W, H, antialias=2, device=args.device))
    print(f"full 2x2 supersampling: {ts / len(b) * 1000:.0f} ms/frame vs edges only {ta / len(b) * 1000:.0f} ms/frame "
          f"-> {ts / ta:.1f}x faster")

    tl, _ = timed(lambda: R.render(scene, c2w, intrinsics(104, 64), 104, 64, antialias=2, device=args.device))
    print(f"lite size: {args.frames} frames at 104x64, antialias=2: {tl:.2f} s")
    views = np.repeat(c2w, max(1, 1024 // len(c2w)) + 1, axis=0)[:1024]
    tv, _ = timed(lambda: R.render(scene, views, intrinsics(52, 32), 52, 32, antialias=1, device=args.device))
    print(f"pose search library: 1024 views at 52x32, antialias=1: {tv:.2f} s ({1024 / tv:.0f} views/s)")


if __name__ == "__main__":
    main()

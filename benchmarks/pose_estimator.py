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

Per judged video (`evaluate.score_clip`: what `v4s tables` spends per video), old vs new in one run, each variant in
its own process, old imported from a checkout of the base commit (--base; without it, this tree with
speculate=False): seconds on the CPU, and the aten operators dispatched (each one kernel launch or more on a GPU),
counted with the renders chunked and the estimator set as on a GPU:

    git worktree add --detach /tmp/jf/base 52af12c       # before the fewer, larger render calls (2026-12-03b)
    PYTHONPATH=. python benchmarks/pose_estimator.py --judge data/lite/val/id/grounding_300003 --base /tmp/jf/base

2026-12-03, 2 CPU cores shared with other workers, grounding_300003 (seconds vary by +-30% run to run here):
ground truth 14.6 / 16.0 s (0.92x), 80837 / 47148 ops (1.71x; in render 78648 / 45119, 1.74x); through the codec
27.1 / 27.1 s (1.00x), 175851 / 103073 ops (1.71x; in render 146135 / 73727, 1.98x); poses, residuals and every
metric bitwise identical. The CPU path is unchanged in cost (the estimator's defaults on a CPU differ only in the
one-trace antialias and the scene tables built once); the launches a GPU makes per video are about halved.
"""
import argparse
import cProfile
import json
import os
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
    """Both videos estimated; also prints how many renders went through the codec (each one is a VAE encode +
    decode when the codec is Wan2.2's: the reason a 5B video's scoring did not finish in results/gpu_2026-12-03c)."""
    scene, codec = Scene.from_dict(meta["scene"]), LiteCodec()
    gt = ground_truth_video(meta)
    videos = {"ground truth": (gt, None), "ground truth through the codec": (codec_round_trip(gt, codec), codec)}
    n_final = ClipConfig(**meta["clip_config"]).box_frames
    out, seconds = {}, {}
    for name, (frames, deg) in videos.items():
        t = time.perf_counter()
        est = PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg, device=device)
        through = [0, 0]  # calls, frames
        if est.degrade is not None:
            inner = est.degrade

            def counted(x, inner=inner, through=through):
                through[0], through[1] = through[0] + 1, through[1] + len(x)
                return inner(x)

            est.degrade = counted
        e = est.estimate(frames, n_final=n_final)
        seconds[name] = time.perf_counter() - t
        out[name] = e
        if through[0]:
            print(f"{name}: {through[1]} rendered frames through the codec in {through[0]} calls, for a "
                  f"{len(frames)}-frame video ({through[1] / len(frames):.0f} per video frame)")
    return out, seconds


# ------------------------------------------------------------------------------------------ per judged video
class _OpCounter:
    """Counts the aten operators torch dispatches (each is at least one kernel launch on a GPU): all of them, and
    those inside `render.render` (the only ones that run on the device when the estimator renders there)."""

    def __init__(self, max_rays=None):
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                counter.total += 1
                counter.render += counter.depth > 0
                return func(*args, **(kwargs or {}))
        self.mode, self.total, self.render, self.depth, self.max_rays = Mode(), 0, 0, 0, max_rays

    def __enter__(self):
        import v4s_lite.evaluate as E
        import v4s_lite.poses as P
        import v4s_lite.render as R

        self._saved = [(m, getattr(m, "render")) for m in (P, R, E) if hasattr(m, "render")]
        real = R.render

        def counted(*a, **k):
            if self.max_rays:  # the chunking the device uses (the pictures do not depend on it)
                k["max_rays"] = self.max_rays
            self.depth += 1
            try:
                return real(*a, **k)
            finally:
                self.depth -= 1
        for m, _ in self._saved:
            m.render = counted
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        for m, f in self._saved:
            m.render = f


def judge_worker(clip, device, variant):
    """One process, one estimator variant ("old": the code on PYTHONPATH with its defaults, or speculate=False in
    this tree; "new"): score_clip of the clip's ground truth and of it through the lite codec, each timed once
    plain and once under the op counter. On the CPU, ops are counted with the renders chunked as this
    code chunks them on a GPU (not with its CPU setting) and with the new estimator's GPU default
    (speculate=True): the count is then the GPU's kernel launches.
    Prints one JSON line."""
    import inspect

    import v4s_lite
    from v4s_lite import poses
    from v4s_lite.evaluate import score_clip

    meta = json.loads((Path(clip) / "meta.json").read_text())
    scene, codec = Scene.from_dict(meta["scene"]), LiteCodec()
    gt = ground_truth_video(meta)
    kw = {}
    if variant == "old" and "speculate" in inspect.signature(PoseEstimator).parameters:
        kw["speculate"] = False
    out = {"code": str(Path(v4s_lite.__file__).parent), "kw": kw, "videos": {}}
    for name, frames, deg in (("gt", gt, None), ("gt_codec", codec_round_trip(gt, codec), codec)):
        make = lambda: PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg,  # noqa: E731
                                     device=device, **kw)
        t = time.perf_counter()
        m = score_clip(meta, frames, make(), lpips=False)
        seconds = time.perf_counter() - t
        # on the CPU, the renders are chunked for the count as this code chunks them on a GPU
        gpu_rays = getattr(poses, "RENDER_MAX_RAYS_GPU", 1 << 19)  # before 2026-12-03b: render's default
        as_gpu = {"speculate": True} if variant == "new" and device == "cpu" else {}  # its default on a GPU
        with _OpCounter(max_rays=gpu_rays if device == "cpu" else None) as c:
            score_clip(meta, frames, PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg,
                                                   device=device, **kw, **as_gpu), lpips=False)
        keep = {k: v for k, v in m.items() if isinstance(v, (int, float, bool))}
        out["videos"][name] = {"seconds": seconds, "ops": c.total, "render_ops": c.render, "metrics": keep,
                               "c2w": np.asarray(m["c2w"]).tolist(), "residuals": np.asarray(m["residuals"]).tolist()}
    print("JSON " + json.dumps(out))


def judge_benchmark(clips, device, base, repeats):
    """old vs new per judged video, each variant in its own process (old from `base`, a checkout of the base
    commit, when given), alternating old / new `repeats` times: seconds (the median), aten ops, equality."""
    import subprocess
    import sys

    here = Path(__file__).resolve()
    tree = here.parents[1]
    runs = {"old": [], "new": []}
    for clip in clips:
        for r in range(repeats):
            for variant in ("old", "new"):
                env = dict(os.environ, PYTHONPATH=str(base if (variant == "old" and base) else tree),
                           OMP_NUM_THREADS="1")
                p = subprocess.run([sys.executable, str(here), "--clip", clip, "--device", device,
                                    "--judge-worker", variant], env=env, capture_output=True, text=True, check=True)
                res = json.loads(next(s for s in p.stdout.splitlines() if s.startswith("JSON "))[5:])
                res["clip"] = clip
                runs[variant].append(res)
                print(f"{Path(clip).name} #{r} {variant} ({res['code']}, {res['kw'] or 'defaults'}): " + ", ".join(
                    f"{v}: {d['seconds']:.2f} s, {d['ops']} ops ({d['render_ops']} in render)"
                    for v, d in res["videos"].items()), flush=True)
    names = list(runs["new"][0]["videos"])
    print(f"\nper judged video ({device}, one thread, medians over {len(clips)} clip(s) x {repeats} run(s)):")
    for v in names + ["both"]:
        pick = names if v == "both" else [v]
        row = {}
        for variant in ("old", "new"):
            row[variant] = {k: float(np.median([sum(x["videos"][n][k] for n in pick) for x in runs[variant]]))
                            for k in ("seconds", "ops", "render_ops")}
        o, n = row["old"], row["new"]
        print(f"  {v:9s} seconds old {o['seconds']:.2f} / new {n['seconds']:.2f} = {o['seconds'] / n['seconds']:.2f}x; "
              f"aten ops old {o['ops']:.0f} / new {n['ops']:.0f} = {o['ops'] / n['ops']:.2f}x; "
              f"in render (device launches) old {o['render_ops']:.0f} / new {n['render_ops']:.0f} = "
              f"{o['render_ops'] / n['render_ops']:.2f}x")
    worst_pose, worst_metric, same = 0.0, 0.0, True
    for a, b in zip(runs["old"], runs["new"]):
        for v in names:
            x, y = a["videos"][v], b["videos"][v]
            worst_pose = max(worst_pose, float(np.abs(np.subtract(x["c2w"], y["c2w"])).max()))
            same &= x["c2w"] == y["c2w"] and x["residuals"] == y["residuals"]
            for k, val in x["metrics"].items():
                if k in y["metrics"] and not (val != val and y["metrics"][k] != y["metrics"][k]):
                    worst_metric = max(worst_metric, abs(val - y["metrics"][k]))
    print(f"old vs new: poses and residuals bitwise identical: {same}; max |c2w| difference {worst_pose:.3g}; "
          f"max |metric| difference {worst_metric:.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default="/tmp/ps/clips/grounding_300000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", type=int, default=0, help="print cProfile's top N entries (cumulative)")
    ap.add_argument("--save", help="write poses, residuals and seconds to this .npz")
    ap.add_argument("--compare", help="a .npz saved by --save (e.g. from the base commit): check equality, ratio")
    ap.add_argument("--judge", nargs="*", metavar="CLIP", help="per judged video (evaluate.score_clip of the "
                    "ground truth and of it through the codec), old vs new in one run: seconds and aten op counts "
                    "(the clips: --clip when none are given)")
    ap.add_argument("--base", help="--judge: a checkout of the base commit to import the old code from (default: "
                    "this tree with PoseEstimator(speculate=False))")
    ap.add_argument("--repeats", type=int, default=1, help="--judge: old / new pairs per clip")
    ap.add_argument("--judge-worker", choices=("old", "new"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.judge_worker:
        return judge_worker(a.clip, a.device, a.judge_worker)
    if a.judge is not None:
        return judge_benchmark(a.judge or [a.clip], a.device, a.base, a.repeats)
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

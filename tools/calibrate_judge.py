"""The judge's calibration suite on many rooms: every variant of `calibration.CALIBRATION` scored on each clip.

    python tools/calibrate_judge.py --data data/lite/val/id --max-clips 32 --workers 16 --device cuda --out cal.json

For each grounding clip: ground truth, ground truth through the lite codec (its renders compared through the same
codec), the walk to another object, a wrong box, frozen, still final view, held scan frame, shuffled, noise, a box
around the border. Prints, per variant, how often the headline (IF@0.2) and each walk check passes against the
verdict it must get, the pose error of ground truth (median, against the true and the codec-aligned trajectory),
and the scoring speed (clips per minute). Thresholds are chosen on these videos, never on model outputs.

    python tools/calibrate_judge.py --data data/lite/val/id --max-clips 8 --workers 1 --pose-error --out pose.json

--pose-error scores only the pose estimate of the ground truth through the lite codec, per clip, with the current
estimator and with the previous one (`PREVIOUS`: before the 2026-12-03 changes), against the codec-aligned walk.

    python tools/calibrate_judge.py --data DIR --max-clips 40 --ground-depth --out depth.json

--ground-depth measures SD's depth rule alone: the true final view, the target's true box, SD with the depth taken
as the previous rule did (the median of the box's middle half) and as `evaluate.grounded_point` does now (a near
quantile of the whole box), beside an oracle (the median depth of the target's own pixels in the box).
"""
import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np


def _score(args):
    folder, device = args
    import torch

    torch.set_num_threads(1)
    from v4s_lite.codec import LiteCodec
    from v4s_lite.calibration import calibration_videos
    from v4s_lite.evaluate import jsonable, score_clip
    from v4s_lite.poses import PoseEstimator, codec_aligned, pose_errors
    from v4s_lite.scene import Scene

    meta = json.loads((Path(folder) / "meta.json").read_text())
    scene, codec = Scene.from_dict(meta["scene"]), LiteCodec()
    out = {}
    for name, frames in calibration_videos(meta, codec).items():
        deg = codec if "codec" in name else None
        t = time.perf_counter()
        m = score_clip(meta, frames, PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=deg,
                                                   device=device), lpips=False)
        m["seconds"] = time.perf_counter() - t
        true = np.asarray(meta["target"]["c2w"])
        m["pose_median_m"] = float(np.median(pose_errors(m["c2w"], true)[0]))
        m["pose_group_median_m"] = float(np.median(pose_errors(m["c2w"], codec_aligned(true))[0]))
        out[name] = jsonable(m)
    return Path(folder).name, out


# The pose estimator before 2026-12-03 (results/judge_2026-12-03.md): 5 coarse candidates a frame, no carrying of
# coarse candidates to the refine size, codec pictures fitted by one pose, no local search.
PREVIOUS = {"shortlist": 5, "carry": False, "blend": 1, "local": False}


def _pose_error(args):
    folder, device = args
    import torch

    torch.set_num_threads(1)
    from v4s_lite.codec import LiteCodec
    from v4s_lite.config import ClipConfig
    from v4s_lite.calibration import codec_round_trip, ground_truth_video
    from v4s_lite.poses import PoseEstimator, codec_aligned, pose_errors
    from v4s_lite.scene import Scene

    meta = json.loads((Path(folder) / "meta.json").read_text())
    scene, codec = Scene.from_dict(meta["scene"]), LiteCodec()
    video = codec_round_trip(ground_truth_video(meta), codec)
    aligned = codec_aligned(np.asarray(meta["target"]["c2w"]))
    out = {}
    for name, kw in (("previous", PREVIOUS), ("current", {})):
        t = time.perf_counter()
        est = PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=codec, device=device, **kw)
        c2w = est.estimate(video, n_final=ClipConfig(**meta["clip_config"]).box_frames).c2w
        err = pose_errors(c2w, aligned)[0]
        out[name] = {"median_m": float(np.median(err)), "mean_m": float(np.mean(err)),
                     "seconds": time.perf_counter() - t}
    return Path(folder).name, out


def pose_error_main(a, folders):
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        per = dict(pool.imap_unordered(_pose_error, [(str(f), a.device) for f in folders]))
    per = dict(sorted(per.items()))
    res = {"data": a.data, "clips": len(per), "device": a.device, "seconds": round(time.time() - t0, 1),
           "previous_settings": PREVIOUS, "per_clip": per}
    for name in ("previous", "current"):
        res[name] = {"median of clip medians m": float(np.median([v[name]["median_m"] for v in per.values()])),
                     "mean of clip means m": float(np.mean([v[name]["mean_m"] for v in per.values()])),
                     "seconds per clip": float(np.mean([v[name]["seconds"] for v in per.values()]))}
    Path(a.out).write_text(json.dumps(res, indent=1))
    print("| clip | previous: median / mean m | current: median / mean m |")
    print("|---|---|---|")
    for c, v in per.items():
        print(f"| {c} | {v['previous']['median_m']:.3f} / {v['previous']['mean_m']:.3f} | "
              f"{v['current']['median_m']:.3f} / {v['current']['mean_m']:.3f} |")
    p, q = res["previous"], res["current"]
    print(f"| median of clip medians / mean of clip means | {p['median of clip medians m']:.3f} / "
          f"{p['mean of clip means m']:.3f} | {q['median of clip medians m']:.3f} / {q['mean of clip means m']:.3f} |")
    print(f"| seconds per clip ({a.device}) | {p['seconds per clip']:.1f} | {q['seconds per clip']:.1f} |")


def _ground_depth(args):
    folder, _ = args
    from v4s_lite.evaluate import GROUND_DEPTH_QUANTILE, grounded_point, spatial_distance
    from v4s_lite.render import render
    from v4s_lite.scene import Scene

    meta = json.loads((Path(folder) / "meta.json").read_text())
    scene, K = Scene.from_dict(meta["scene"]), np.asarray(meta["K"], float)
    c2w = np.asarray(meta["target"]["c2w"], float)[-1]
    view = render(scene, c2w[None], K, meta["width"], meta["height"], antialias=2)
    depth, inst = view.depth[0], view.instance[0]
    target = scene.object(meta["target_id"])
    box = np.asarray(meta["target"]["boxes"], float)[-1, meta["target_id"] - 1]

    def sd_at(z):  # the ray through the box centre at depth z
        cu, cv = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        ray = np.array([(cu - K[0, 2]) / K[0, 0], (cv - K[1, 2]) / K[1, 1], 1.0]) * z
        return spatial_distance(c2w[:3, :3] @ ray + c2w[:3, 3], target.center, scene.room)

    h, w = depth.shape
    cu, cv, qw, qh = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) / 4, (box[3] - box[1]) / 4
    x0, x1 = int(np.clip(np.floor(cu - qw), 0, w - 1)), int(np.clip(np.ceil(cu + qw), 1, w))
    y0, y1 = int(np.clip(np.floor(cv - qh), 0, h - 1)), int(np.clip(np.ceil(cv + qh), 1, h))
    X0, X1 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.ceil(box[2]), 1, w))
    Y0, Y1 = int(np.clip(np.floor(box[1]), 0, h - 1)), int(np.clip(np.ceil(box[3]), 1, h))
    own = inst[Y0:Y1, X0:X1] == target.id
    out = {"category": target.category,
           "previous (median of the middle half)": sd_at(float(np.median(depth[y0:y1, x0:x1]))),
           f"current ({GROUND_DEPTH_QUANTILE:.0f}% of the box)": spatial_distance(
               grounded_point(depth, box, c2w, K)[0], target.center, scene.room),
           "10% of the box": spatial_distance(grounded_point(depth, box, c2w, K, 10.0)[0], target.center, scene.room),
           "oracle (the target's pixels)": sd_at(float(np.median(depth[Y0:Y1, X0:X1][own]))) if own.any() else None}
    return Path(folder).name, out


def ground_depth_main(a, folders):
    with mp.get_context("spawn").Pool(a.workers) as pool:
        per = dict(sorted(pool.imap_unordered(_ground_depth, [(str(f), a.device) for f in folders])))
    rules = [k for k in next(iter(per.values())) if k != "category"]
    res = {"data": a.data, "clips": len(per), "per_clip": per, "rules": {}}
    print("| depth rule | SD max | SD p90 | SD median | clips SD >= 0.1 | clips SD >= 0.2 | worst clip |")
    print("|---|---|---|---|---|---|---|")
    for r in rules:
        v = {c: m[r] for c, m in per.items() if m[r] is not None}
        x = np.array(list(v.values()))
        worst = max(v, key=v.get)
        res["rules"][r] = {"max": float(x.max()), "p90": float(np.percentile(x, 90)), "median": float(np.median(x)),
                           "n>=0.1": int((x >= 0.1).sum()), "n>=0.2": int((x >= 0.2).sum()), "n": len(x)}
        print(f"| {r} | {x.max():.3f} | {np.percentile(x, 90):.3f} | {np.median(x):.3f} | {(x >= 0.1).sum()} of "
              f"{len(x)} | {(x >= 0.2).sum()} | {worst} ({per[worst]['category']}) |")
    Path(a.out).write_text(json.dumps(res, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="grounding clip folders (v4s make-data)")
    p.add_argument("--max-clips", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu", help="where the pose estimator renders")
    p.add_argument("--pose-error", action="store_true",
                   help="only the pose error of codec ground truth, previous vs current estimator")
    p.add_argument("--ground-depth", action="store_true",
                   help="only SD's depth rule on the true final views: previous vs current vs an oracle")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    from v4s_lite.data import clip_folders
    from v4s_lite.calibration import CALIBRATION

    folders = clip_folders(a.data)[:a.max_clips or None]
    if a.pose_error:
        return pose_error_main(a, folders)
    if a.ground_depth:
        return ground_depth_main(a, folders)
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        per = dict(pool.imap_unordered(_score, [(str(f), a.device) for f in folders]))
    wall = time.time() - t0
    n_videos = sum(len(v) for v in per.values())
    rows = {}
    for name, want in CALIBRATION.items():
        ms = [per[c][name] for c in per if name in per[c]]  # a clip may lack a variant (no wrong box)
        rows[name] = {"must pass": want, "n": len(ms), **{k: float(np.mean([m[k] for m in ms])) for k in
                      ("IF@0.2", "IF", "walk", "start_ok", "DD", "no_teleport", "no_backtrack", "stops", "fits_room",
                       "box_IoU", "SD")},
                      "pose_median_m": float(np.median([m["pose_median_m"] for m in ms])),
                      "pose_group_median_m": float(np.median([m["pose_group_median_m"] for m in ms])),
                      "residual_max_p95": float(np.percentile([m["residual_max"] for m in ms], 95)),
                      "jump_m_p95": float(np.percentile([m["jump_m"] for m in ms], 95)),
                      "path_ratio_range": [float(np.min([m["path_ratio"] for m in ms])),
                                           float(np.max([m["path_ratio"] for m in ms]))]}
    res = {"data": a.data, "clips": len(per), "device": a.device, "workers": a.workers, "seconds": round(wall, 1),
           "videos_per_minute": round(60 * n_videos / wall, 1), "variants": rows, "per_clip": per}
    Path(a.out).write_text(json.dumps(res, indent=1, default=float))
    print(f"{len(per)} clips x {len(CALIBRATION)} videos in {wall:.0f} s on {a.workers} workers ({a.device}): "
          f"{res['videos_per_minute']} videos per minute")
    print("| video | must pass | IF@0.2 | IF | walk | start | moves | no teleport | no backtrack | stops | fits room | "
          "box IoU | SD | pose median m (true / codec-aligned) | residual p95 | jump p95 m | path ratio min-max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {'yes' if r['must pass'] else 'no'} | {r['IF@0.2']:.2f} | {r['IF']:.2f} | {r['walk']:.2f} | "
              f"{r['start_ok']:.2f} | {r['DD']:.2f} | {r['no_teleport']:.2f} | {r['no_backtrack']:.2f} | "
              f"{r['stops']:.2f} | {r['fits_room']:.2f} | {r['box_IoU']:.2f} | {r['SD']:.3f} | "
              f"{r['pose_median_m']:.2f} / {r['pose_group_median_m']:.2f} | {r['residual_max_p95']:.3f} | "
              f"{r['jump_m_p95']:.2f} | {r['path_ratio_range'][0]:.2f}-{r['path_ratio_range'][1]:.2f} |")


if __name__ == "__main__":
    main()

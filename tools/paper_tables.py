"""The paper's tables at lite scale: generate held-out clips under each condition, score them with
`v4s_lite.evaluate`, write one results file that notebook 09 reads.

    python tools/paper_tables.py --runs runs --data data/lite --out results/lite_tables.json --device cuda --workers 16

Conditions (all on held-out scenes, disjoint seeds from training):
    ground truth, full model (joint CFG), no context (first frame only, as Wan2.2-5B sees it),
    guidance none / text / joint, without auxiliary box frames, contiguous context sampling,
    inference context length 0 / 2 / 4 / 8 (trained) / 16 chunks, repeated sampling 1..5 tries,
    out-of-distribution scenes, navigation with and without context.
Each (condition, clip) is one task: generate on the device, then render-and-compare on a CPU core.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TRIES = 5


def conditions(runs: Path) -> dict:
    """Every condition of the tables. The ablation variants are trained for fewer steps than the shipped
    model; each is compared with the shipped run's checkpoint at the same step (the same budget): the budget is
    the fewest steps any variant reached, and every same-budget row takes its run's checkpoint nearest to it
    (runs interrupted at the end of a device call stop a few steps apart; checkpoints every 250 steps)."""
    main = runs / "lite"
    variants = {"without box frames": (runs / "lite_nobox", {}),
                "contiguous context": (runs / "lite_contiguous", {"sampling": "contiguous"}),
                "context-only attention": (runs / "lite_ctxonly", {})}
    trained = {name: v for name, v in variants.items() if v[0].exists()}  # a variant not trained has no row
    budget = min((int(checkpoint(run).name[5:]) for run, _ in trained.values()), default=None)
    c = {
        "ground truth": dict(kind="gt", split="id"),
        "full (joint CFG)": dict(ckpt=main, split="id", tries=TRIES),
        "no context (first frame only)": dict(ckpt=main, split="id", chunks=-1),
        "guidance none": dict(ckpt=main, split="id", guidance="none"),
        "guidance text": dict(ckpt=main, split="id", guidance="text"),
    }
    if trained:
        c["full, same budget"] = dict(ckpt=main, step=budget, split="id")
        for name, (run, extra) in trained.items():
            c[name] = dict(ckpt=run, step=budget, split="id", **extra)
    c.update({
        "OOD scenes": dict(ckpt=main, split="ood"),
        "navigation": dict(ckpt=main, split="nav"),
        "navigation, no context": dict(ckpt=main, split="nav", chunks=-1),
        "ground truth OOD": dict(kind="gt", split="ood"),
    })
    for k in (0, 2, 4, 16):
        c[f"context {k} chunks"] = dict(ckpt=main, split="id", chunks=k)
    return c

_MODELS = {}


def _task(args):
    """(condition name, spec, clip folder, device, seed) -> list of per-try metrics."""
    import torch

    torch.set_num_threads(1)
    from v4s_lite.config import get_clip_config
    from v4s_lite.data import ClipDataset
    from v4s_lite.evaluate import PoseEstimator, ground_truth_video, score_clip
    from v4s_lite.sample import load_model, sample_clip
    from v4s_lite.world import Scene

    name, spec, folder, device, seed = args
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    est = PoseEstimator(Scene.from_dict(meta["scene"]), meta["K"], meta["width"], meta["height"])
    if spec.get("kind") == "gt":
        return [score_clip(meta, ground_truth_video(meta), est)]
    path = checkpoint(spec["ckpt"], spec.get("step"))
    key = str(path)
    if key not in _MODELS:
        _MODELS[key] = load_model(path, device=device)
    model, codec, text_encoder, cfg = _MODELS[key]
    clip_cfg = get_clip_config(cfg.clip)
    chunks = spec.get("chunks", clip_cfg.context_chunks)
    ds_cfg = clip_cfg.with_(context_chunks=max(chunks, 1))
    ds = ClipDataset(folder.parent, ds_cfg, sampling=spec.get("sampling", "noncontiguous"), seed=seed)
    example = ds[ds.folders.index(folder)]
    if chunks == 0:  # the scan's first frame alone as context
        example["context"] = example["context"][:1]
        example["context_frame_indices"] = example["context_frame_indices"][:1]
    if chunks < 0:  # no context at all: the model sees only the clean first target frame
        example["context"] = example["context"][:0]
        example["context_frame_indices"] = example["context_frame_indices"][:0]
    samples = sample_clip(model, codec, text_encoder, example, clip_cfg, tries=spec.get("tries", 1), seed=seed,
                          device=device, guidance=spec.get("guidance", "joint"))
    return [score_clip(meta, s.frames, est) for s in samples]


def checkpoint(run: Path, step: int | None = None) -> Path:
    """The run's latest checkpoint, or the one nearest to `step` (the earlier one on a tie)."""
    steps = sorted(Path(run).glob("step_[0-9]*"))
    if not steps:
        raise SystemExit(f"{run}: no step_XXXXXX checkpoint; train it first (tools/gpu_lite.sh train)")
    return steps[-1] if step is None else min(steps, key=lambda s: (abs(int(s.name[5:]) - step), int(s.name[5:])))


def _jsonable(m):
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in m.items()
            if isinstance(v, (int, float, str, bool, type(None)))}


def main(argv=None):
    import multiprocessing as mp

    from v4s_lite.data import clip_folders
    from v4s_lite.evaluate import repeated_sampling, summarize

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs")
    p.add_argument("--data", default="data/lite", help="holds heldout/, ood/, nav/ clip folders")
    p.add_argument("--out", default="results/lite_tables.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--max-clips", type=int, default=0)
    p.add_argument("--only", nargs="*", help="condition names to run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deadline", type=float, default=0, help="seconds; stop and write what is done by then")
    a = p.parse_args(argv)
    data = Path(a.data)
    splits = {"id": data / "heldout", "ood": data / "ood", "nav": data / "nav"}
    conds = conditions(Path(a.runs))
    if a.only:
        conds = {k: v for k, v in conds.items() if k in a.only}
    tasks = []
    for name, spec in conds.items():
        folders = clip_folders(splits[spec["split"]])
        folders = folders[: a.max_clips] if a.max_clips else folders
        tasks += [(i, name, spec, str(f), a.device, a.seed) for i, f in enumerate(folders)]
    # clip-major order: a --deadline then cuts every condition to the same clips, not whole conditions
    tasks = [t[1:] for t in sorted(tasks, key=lambda t: t[0])]
    t0 = time.time()
    ctx = mp.get_context("spawn")
    per, done = {}, 0
    with ctx.Pool(a.workers) as pool:
        pending = [pool.apply_async(_task, (t,)) for t in tasks]
        for (name, _, folder, _, _), r in zip(tasks, pending):
            left = a.deadline - (time.time() - t0) if a.deadline else None
            if left is not None and left <= 0:
                break
            try:
                per.setdefault(name, {})[Path(folder).name] = r.get(timeout=left)
                done += 1
            except mp.TimeoutError:
                break
        pool.terminate()
    print(f"{done} of {len(tasks)} tasks done")
    out = {"command": "python tools/paper_tables.py " + " ".join(sys.argv[1:] if argv is None else argv), "seconds": round(time.time() - t0, 1),
           "conditions": {}, "tries": {}}
    if a.only and Path(a.out).exists():  # a partial run updates the conditions it ran and keeps the others
        old = json.loads(Path(a.out).read_text())
        out = {**old, "command": old["command"] + " && " + out["command"], "seconds": old["seconds"] + out["seconds"]}
    out["checkpoints"] = {**out.get("checkpoints", {}), **{
        name: str(checkpoint(spec["ckpt"], spec.get("step"))) for name, spec in conds.items() if "ckpt" in spec}}
    for name, clips in per.items():
        if not clips:
            continue
        first = {k: ms[0] for k, ms in clips.items()}
        out["conditions"][name] = {"summary": summarize(first), "per_clip": {k: _jsonable(m) for k, m in first.items()}}
        if len(next(iter(clips.values()))) > 1:  # repeated sampling: any try succeeds / chosen by GT-free rules
            out["tries"][name] = {**repeated_sampling(clips),
                                  "per_try": {k: [_jsonable(m) for m in ms] for k, ms in clips.items()}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"{done} of {len(tasks)} tasks in {out['seconds']} s -> {a.out}")
    for name, c in out["conditions"].items():
        s = c["summary"]
        print(f"{name:32s} " + " ".join(f"{k}={s[k]['mean']:.3f}" for k in ("SD", "IF", "IF@0.2", "box_IoU", "PSNR", "GT_PSNR")
                                          if k in s and s[k]["mean"] is not None) + f" n={s['n']}")


if __name__ == "__main__":
    main()

"""The paper's tables at lite scale (notebook 09): generate the held-out clips under each condition, score them
with `v4s_lite.evaluate`, write one results file.

    v4s eval --runs runs --data data/lite --out results/lite_tables.json --device cuda --workers 16

Conditions (all on held-out scenes, disjoint seeds from training):
    ground truth, full model (joint CFG), no context (first frame only, as Wan2.2-5B sees it),
    guidance none / text / joint, without auxiliary box frames, contiguous context sampling,
    inference context length 0 / 2 / 4 / 8 (trained) / 16 chunks, repeated sampling 1..5 tries,
    out-of-distribution scenes, navigation with and without context.
Each (condition, clip) is one task: generate on the device, then render-and-compare on a CPU core.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .utils import V4SError

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


_MODELS = {}  # per worker process: each checkpoint is loaded once


def _task(args):
    """(condition name, spec, clip folder, device, seed) -> list of per-try metrics."""
    import torch

    torch.set_num_threads(1)
    from .config import get_clip_config
    from .data import ClipDataset
    from .evaluate import PoseEstimator, ground_truth_video, score_clip
    from .checkpoints import load_model
    from .sample import sample_clip
    from .scene import Scene

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
    from .checkpoints import list_checkpoints as checkpoints

    steps = checkpoints(run)
    if not steps:
        raise V4SError(f"{run}: no step_XXXXXX checkpoint; train it first (tools/gpu_lite.sh train)")
    return steps[-1] if step is None else min(steps, key=lambda s: (abs(int(s.name[5:]) - step), int(s.name[5:])))


def paper_tables(runs, data, out, device: str = "cuda", workers: int | None = None, only=None, seed: int = 0,
                 deadline: float = 0, max_clips: int = 0, command: str = "") -> dict:
    """Run the conditions (all, or the names in `only`) over the clips in data/heldout, data/ood, data/nav and
    write `out` (JSON): per condition a summary with 95% intervals and the per-clip metrics, the repeated-sampling
    curves with every try's metrics, and the checkpoint each row used. With `only` and an existing `out`, the
    conditions run replace theirs and the others are kept. `deadline` (s): stop and write what is done by then."""
    import multiprocessing as mp

    from .data import clip_folders
    from .evaluate import _jsonable, repeated_sampling, summarize

    data, out = Path(data), Path(out)
    splits = {"id": data / "heldout", "ood": data / "ood", "nav": data / "nav"}
    conds = conditions(Path(runs))
    if only:
        unknown = set(only) - set(conds)
        if unknown:
            raise V4SError(f"unknown condition(s) {sorted(unknown)}; the conditions are: {list(conds)}")
        conds = {k: v for k, v in conds.items() if k in only}
    tasks = []
    for name, spec in conds.items():
        folders = clip_folders(splits[spec["split"]])
        folders = folders[:max_clips] if max_clips else folders
        tasks += [(i, name, spec, str(f), device, seed) for i, f in enumerate(folders)]
    # clip-major order: a deadline then cuts every condition to the same clips, not whole conditions
    tasks = [t[1:] for t in sorted(tasks, key=lambda t: t[0])]
    t0 = time.time()
    per, done = {}, 0
    with mp.get_context("spawn").Pool(workers or os.cpu_count()) as pool:
        pending = [pool.apply_async(_task, (t,)) for t in tasks]
        for (name, _, folder, _, _), r in zip(tasks, pending):
            left = deadline - (time.time() - t0) if deadline else None
            if left is not None and left <= 0:
                break
            try:
                per.setdefault(name, {})[Path(folder).name] = r.get(timeout=left)
                done += 1
            except mp.TimeoutError:
                break
        pool.terminate()
    res = {"command": command, "seconds": round(time.time() - t0, 1), "conditions": {}, "tries": {}}
    if only and out.exists():  # a partial run updates the conditions it ran and keeps the others
        old = json.loads(out.read_text())
        res = {**old, "command": old["command"] + " && " + command, "seconds": old["seconds"] + res["seconds"]}
    res["checkpoints"] = {**res.get("checkpoints", {}), **{
        name: str(checkpoint(spec["ckpt"], spec.get("step"))) for name, spec in conds.items() if "ckpt" in spec}}
    for name, clips in per.items():
        first = {k: ms[0] for k, ms in clips.items()}
        res["conditions"][name] = {"summary": summarize(first), "per_clip": {k: _jsonable(m) for k, m in first.items()}}
        if len(next(iter(clips.values()))) > 1:  # repeated sampling: any try succeeds / chosen by GT-free rules
            res["tries"][name] = {**repeated_sampling(clips),
                                  "per_try": {k: [_jsonable(m) for m in ms] for k, ms in clips.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(f"{done} of {len(tasks)} tasks in {res['seconds']} s -> {out}")
    for name, c in res["conditions"].items():
        s = c["summary"]
        print(f"{name:32s} " + " ".join(f"{k}={s[k]['mean']:.3f}" for k in ("SD", "IF", "IF@0.2", "box_IoU", "PSNR", "GT_PSNR")
                                          if k in s and s[k]["mean"] is not None) + f" n={s['n']}")
    return res

"""The paper's tables at lite scale (notebook 09): generate the clips of one evaluation set under each condition,
score them with the judge (`v4s_lite.evaluate`), and compare conditions clip by clip.

    v4s tables --runs runs --data data/lite/test --out results/lite_tables.json --device cuda --workers 16

`--data` is one evaluation set: `id/` (grounding rooms), `ood/` (a held-out (colour, category) pair), `nav/`
(navigation). The course keeps two, from seed ranges disjoint from training (docs/DATA.md): `val/` decides
everything (checkpoint, model size, guidance scale, the try-selection rule, the judge's thresholds were set on
ground truth), `test/` is only reported.

Conditions: ground truth and ground truth through the codec (the ceiling a lite model can reach), a perfect walk to
another of the room's objects (the floor: what walking somewhere plausible scores by chance), the shipped run
with joint CFG (and repeated sampling), guidance text / none, context replaced by noise (the "first frame only"
input: what training feeds the model when it drops the context), inference context length, the ablation runs
(without box frames, contiguous context), OOD rooms, navigation with and without context. Each (condition, clip)
is one task: generate on the device, render-and-compare (renders on the device too). Every condition uses the same
clips and noise seeds, so `PAIRS` are reported as paired differences (`statistics.paired_difference`).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

from .utils import V4SError


# Ablation runs beside the run they ablate (RUNS/<ablated>, default lite): name -> (folder suffix, generation
# settings); RUNS/lite_nobox ablates RUNS/lite, RUNS/end_lite_nobox ablates RUNS/end_lite. A run that was not
# trained has no row.
VARIANTS = {"without box frames": ("nobox", {}), "contiguous context": ("contiguous", {"sampling": "contiguous"})}
# The contiguous arm trains on contiguous context *and* is shown a contiguous stretch at inference, which covers less
# of the room. This row splits the two: RUNS/<ablated> (trained non-contiguous) shown contiguous context, so
# "contiguous context" minus it is the training alone on identical inputs, and "full, same budget" minus it the input.
CONTIGUOUS_AT_INFERENCE = "full, same budget, contiguous context at inference"

# Conditions whose videos carry no red box: their run trained without box frames. Scored clips say so themselves
# ("marked": False, evaluate.score_clip); this names them for results scored before they did (2026-12-04), so
# `rejudge` does not ask those videos for a box they were never trained to draw.
UNMARKED = ("without box frames",)

# Paired comparisons: name -> (condition a, condition b, metrics); the table reports b - a.
PAIRS = {
    "joint vs text-only CFG (the paper's 'without context CFG')": ("guidance text", "full (joint CFG)", ("IF@0.2", "SD", "PSNR")),
    "joint CFG vs no guidance": ("guidance none", "full (joint CFG)", ("IF@0.2", "SD", "PSNR")),
    "box frames vs none (same budget)": ("without box frames", "full, same budget", ("IF@0.2", "SD", "PSNR")),
    "non-contiguous vs contiguous (same budget)": ("contiguous context", "full, same budget", ("IF@0.2", "SD", "PSNR")),
    "non-contiguous vs contiguous context shown, one model (the input alone)": (
        CONTIGUOUS_AT_INFERENCE, "full, same budget", ("IF@0.2", "SD", "PSNR")),
    "non-contiguous vs contiguous training, both shown contiguous context (the training alone)": (
        "contiguous context", CONTIGUOUS_AT_INFERENCE, ("IF@0.2", "SD", "PSNR")),
    "video context vs noise context (first frame only)": ("first frame only (context dropped)", "full (joint CFG)",
                                                          ("IF@0.2", "SD", "PSNR")),
    "context 16 vs 8 chunks (longer than trained)": ("full (joint CFG)", "context 16 chunks", ("IF@0.2", "SD")),
    "context 8 vs 2 chunks": ("context 2 chunks", "full (joint CFG)", ("IF@0.2", "SD")),
    "navigation: context vs noise context": ("navigation, context dropped", "navigation", ("GT_PSNR", "pose_err_m")),
}


SCALE_ROW = "joint CFG, scale "  # + the scale: a row of `main` at another guidance scale (`v4s tables --scales`)


def scale_row(scale: float) -> str:
    """The tables' row of `main` sampled with joint CFG at guidance scale `scale` (`v4s tables --scales`)."""
    return f"{SCALE_ROW}{scale:g}"


# a row of `main` sampled with other solver settings (`v4s tables --sampling`): the scheduler, its steps and its
# shift, the settings the run did not learn (the guidance scale has its own rows, `--scales`)
SAMPLING_ROW = "sampling "
SOLVER_SETTINGS = ("scheduler", "steps", "shift")


def parse_sampling(text: str) -> dict:
    """`v4s tables --sampling` text ("steps=40", "scheduler=euler,steps=40", "shift=6") -> SamplingSettings
    overrides ({"steps": 40}), checked as `v4s sample` checks its flags, so a wrong name fails before any model
    loads."""
    from .sample import SamplingSettings

    out = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in SOLVER_SETTINGS:
            hint = (" (guidance scales have their own rows: --scales S)" if key in ("scale", "guidance", "text_scale",
                                                                                     "context_scale") else "")
            raise V4SError(f"--sampling {text!r}: write KEY=VALUE[,KEY=VALUE] with KEY one of "
                           f"{list(SOLVER_SETTINGS)}{hint}")
        if key in out:
            raise V4SError(f"--sampling {text!r}: {key} is given twice")
        try:
            out[key] = {"steps": int, "shift": float}.get(key, str)(value.strip())
        except ValueError:
            raise V4SError(f"--sampling {text!r}: {key}={value.strip()!r} is not a number") from None
    if not out:
        raise V4SError(f"--sampling {text!r}: no setting given; e.g. --sampling steps=40 shift=6")
    SamplingSettings(**out).checked()  # as v4s sample checks them: steps >= 1, shift > 0, a scheduler that exists
    default = SamplingSettings()
    if all(getattr(default, k) == v for k, v in out.items()):
        raise V4SError(f"--sampling {text!r}: these are the defaults, the 'full (joint CFG)' row it is compared with")
    return out


def sampling_row(overrides: dict) -> str:
    """The tables' row of `main` with these solver settings (`v4s tables --sampling`), e.g. "sampling steps=40"."""
    return SAMPLING_ROW + ", ".join(f"{k}={overrides[k]:g}" if isinstance(overrides[k], float) else
                                    f"{k}={overrides[k]}" for k in SOLVER_SETTINGS if k in overrides)


def conditions(runs: Path, main: str = "lite", tries: int = 1, also=(), ablated: str = "lite", scales=(),
               sampling=()) -> dict:
    """Every condition of the tables. The ablation variants (RUNS/<ablated>_nobox, ..., each trained beside
    RUNS/<ablated> at its size and recipe) are compared with RUNS/<ablated>'s checkpoint nearest to the fewest steps
    any variant reached (the same budget and recipe; runs interrupted together stop a few steps apart). `main` is
    the run the headline rows use; `tries` > 1 adds repeated sampling to the "full" row. `also`: more runs under
    RUNS, each with its own "full: RUN" row (joint CFG, last checkpoint): the size sweep and the shipped model side by
    side on the same rooms and noise seeds. `scales`: more guidance scales, each a "joint CFG, scale S" row of `main`
    beside "full (joint CFG)" (SamplingSettings.scale): the validation choice of the scale (choose_run). `sampling`:
    solver settings (`parse_sampling` text or dicts), each a "sampling ..." row of `main` (joint CFG, default scale)
    beside "full (joint CFG)": the validation choice of the solver."""
    from .checkpoints import nearest_checkpoint
    from .sample import SamplingSettings

    bad = [s for s in scales if not s > 0 or s == SamplingSettings.scale]
    if bad or len(set(scales)) != len(scales):
        raise V4SError(f"--scales {list(scales)}: each must be a distinct guidance scale > 0 other than "
                       f"{SamplingSettings.scale:g}, the scale of the 'full (joint CFG)' row it is compared with")
    solvers = [parse_sampling(x) if isinstance(x, str) else dict(x) for x in sampling]
    if len({sampling_row(x) for x in solvers}) != len(solvers):
        raise V4SError(f"--sampling {list(sampling)}: the same settings are given twice")
    runs = Path(runs)
    main_run = runs / main
    trained = {name: (runs / f"{ablated}_{suffix}", extra) for name, (suffix, extra) in VARIANTS.items()
               if (runs / f"{ablated}_{suffix}").exists()}
    if trained and not (runs / ablated).is_dir():
        raise V4SError(f"{sorted(str(r) for r, _ in trained.values())} ablate {runs / ablated}, which does not exist: "
                       "pass the run they were trained beside as --ablated RUN")
    budget = min((int(nearest_checkpoint(run).name[5:]) for run, _ in trained.values()), default=None)
    c = {
        "ground truth": dict(kind="gt", split="id"),
        "ground truth through the codec": dict(kind="gt_codec", split="id"),
        "walk to another object (chance)": dict(kind="other", split="id"),
        "full (joint CFG)": dict(ckpt=main_run, split="id", tries=tries),
        "guidance text": dict(ckpt=main_run, split="id", guidance="text"),
        "guidance none": dict(ckpt=main_run, split="id", guidance="none"),
        "first frame only (context dropped)": dict(ckpt=main_run, split="id", context="noise"),
        "context 2 chunks": dict(ckpt=main_run, split="id", chunks=2),
        "context 16 chunks": dict(ckpt=main_run, split="id", chunks=16),
    }
    if trained:
        c["full, same budget"] = dict(ckpt=runs / ablated, step=budget, split="id")
        for name, (run, extra) in trained.items():
            c[name] = dict(ckpt=run, step=budget, split="id", **extra)
        if "contiguous context" in trained:  # the same-budget row with the contiguous arm's generation settings
            c[CONTIGUOUS_AT_INFERENCE] = dict(c["full, same budget"], **trained["contiguous context"][1])
    c.update({
        **{f"full: {r}": dict(ckpt=runs / r, split="id") for r in also},
        **{scale_row(s): dict(ckpt=main_run, split="id", scale=float(s)) for s in scales},
        **{sampling_row(x): dict(ckpt=main_run, split="id", solver=x) for x in solvers},
        "ground truth OOD": dict(kind="gt", split="ood"),
        "OOD scenes": dict(ckpt=main_run, split="ood"),
        "navigation": dict(ckpt=main_run, split="nav"),
        "navigation, context dropped": dict(ckpt=main_run, split="nav", context="noise"),
    })
    return c


_PIPELINES = {}  # per worker process: each checkpoint is loaded once


def _task(args):
    """(condition name, spec, clip folder, device, seed) -> list of per-try metrics."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from .checkpoints import nearest_checkpoint
    from .codec import LiteCodec
    from .config import get_clip_config
    from .data import ClipDataset
    from .calibration import approach_video, codec_round_trip, ground_truth_video
    from .evaluate import room_estimator, score_clip
    from .sample import SamplingSettings, V4SPipeline
    from .scene import Scene

    name, spec, folder, device, seed = args
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    scene = Scene.from_dict(meta["scene"])
    judge_device = spec.get("judge_device") or device  # paper_tables(judge_device=): judge elsewhere (the CPU)
    estimator = lambda codec: room_estimator(meta, codec, judge_device)  # noqa: E731
    if spec.get("kind") == "gt":
        return [score_clip(meta, ground_truth_video(meta), estimator(None), lpips=False)]
    if spec.get("kind") == "other":  # chance: the calibration's perfect walk to another object (the instruction
        # ignored), one drawn per clip; its target-in-view and SD shares are what a model gets without finding the target
        others = [o.id for o in scene.objects if o.id != meta["target_id"]]
        other = int(np.random.default_rng([seed, meta.get("seed", 0)]).choice(others))
        return [score_clip(meta, approach_video(meta, other, meta.get("seed", 0)), estimator(None), lpips=False)]
    if spec.get("kind") == "gt_codec":
        codec = LiteCodec()
        return [score_clip(meta, codec_round_trip(ground_truth_video(meta), codec), estimator(codec), lpips=False)]
    path = nearest_checkpoint(spec["ckpt"], spec.get("step"))
    key = str(path)
    if key not in _PIPELINES:
        pipe = V4SPipeline.from_pretrained(path, device=device)
        # the tables compare runs at the shape they trained at (a plain saved model: the lite clips), not at the
        # inference shape (which differs only for paper_train)
        pipe.clip_config = get_clip_config(pipe.config.clip if pipe.config is not None else "lite")
        _PIPELINES[key] = pipe
    pipe = _PIPELINES[key]
    clip_cfg = pipe.clip_config
    chunks = spec.get("chunks", clip_cfg.context_chunks)
    ds = ClipDataset(folder.parent, clip_cfg.with_(context_chunks=chunks), sampling=spec.get("sampling", "noncontiguous"),
                     seed=seed)
    example = ds[ds.folders.index(folder)]
    # v4s sample's settings, the guidance as the condition says; the schedule the run trained on
    settings = SamplingSettings(guidance=spec.get("guidance", SamplingSettings.guidance),
                                scale=spec.get("scale", SamplingSettings.scale), **spec.get("solver", {}))
    first = spec.get("first_try", 0)  # --resume growing a row to more tries: tries first+1.. (noise seed + k for try k+1)
    samples = pipe(example, settings, tries=spec.get("tries", 1) - first, seed=seed + first,
                   drop_context=spec.get("context") == "noise")
    est = estimator(pipe.codec)
    return [score_clip(meta, s.frames, est, lpips=False, marked=pipe.marks_target) for s in samples]


def paired(res: dict, pairs: dict = PAIRS) -> dict:
    """The paired differences of the conditions both present in a results file (first try of each); each
    "joint CFG, scale S" row (`--scales`) and each "sampling ..." row (`--sampling`) against "full (joint CFG)", the
    default settings, too."""
    from .sample import SamplingSettings
    from .statistics import paired_difference

    out = {}
    conds = res["conditions"]
    scales = {f"joint CFG scale {c[len(SCALE_ROW):]} vs scale {SamplingSettings.scale:g}":
              ("full (joint CFG)", c, ("IF@0.2", "SD", "walk", "PSNR")) for c in conds if c.startswith(SCALE_ROW)}
    solvers = {f"{c} vs the defaults": ("full (joint CFG)", c, ("IF@0.2", "SD", "walk", "PSNR"))
               for c in conds if c.startswith(SAMPLING_ROW)}
    for name, (a, b, keys) in {**pairs, **scales, **solvers}.items():
        if a in conds and b in conds:
            for k in keys:
                out[f"{name}: {k}"] = paired_difference(conds[a]["per_clip"], conds[b]["per_clip"], k)
    return out


def choose_run(res: dict, runs, incumbent: str | None = "shipped", key: str = "IF@0.2", row: str = "full: {}",
               sd_tier: bool = False) -> dict:
    """The validation choice between runs scored side by side (`v4s tables --also`: one "full: RUN" row each, on the
    same rooms and noise seeds). The rule, fixed before the runs are trained: the highest mean `key` (IF(SD<0.2)),
    ties broken by the lower mean SD; a run with no scored room cannot be chosen. A challenger replaces the
    `incumbent` (the shipped model) only when its paired advantage on those rooms has a 95% interval above 0: a lead
    of a few rooms is noise (results/gpu_2026-12-04: a 4-to-2 lead on 35 validation rooms reversed on the test rooms).
    Returns {"chosen", "by_rule" (the rule's pick before the incumbent check), "rows" [(run, mean key, mean SD, n)],
    "vs_incumbent" (statistics.paired_difference or None), "reason"}. `row`: each candidate's condition name; the
    guidance scale is chosen with the same rule among condition names (`v4s tables --scales`): row="{}",
    incumbent="full (joint CFG)".
    `sd_tier`: when the incumbent stays, a second tier (the solver and training-lever leases, written before they
    ran): a challenger whose SD is shown lower than the incumbent's (the paired interval below 0) while its mean
    `key` and walk are not lower replaces it, the lowest mean SD among such; "tier" says which tier decided."""
    from .statistics import format_difference, paired_difference

    conds = res["conditions"]
    rows = []
    for r in runs:
        s = conds.get(row.format(r), {}).get("summary")
        if s and s["n"] and s[key]["mean"] is not None:
            rows.append((r, s[key]["mean"], s["SD"]["mean"], s["n"]))
    if not rows:
        raise V4SError(f"none of {list(runs)} has a scored {row.format('RUN')!r} row in the results; score them with "
                       "`v4s tables --main RUN --also RUN ... --only \"full: RUN\"` (guidance scales: `--scales S ...`) "
                       "on the validation set")
    by_rule = min(rows, key=lambda t: (-t[1], t[2]))[0]
    out = {"chosen": by_rule, "by_rule": by_rule, "rows": rows, "vs_incumbent": None,
           "reason": f"{by_rule}: the highest {key} on validation"}
    if incumbent is not None and by_rule != incumbent and row.format(incumbent) in conds:
        d = paired_difference(conds[row.format(incumbent)]["per_clip"], conds[row.format(by_rule)]["per_clip"], key)
        out["vs_incumbent"] = d
        if d["n"] == 0 or d["ci95"][0] <= 0:
            out["chosen"] = incumbent
            ci = format_difference(d, counts=None)
            out["reason"] = (f"{incumbent} kept: {by_rule} leads on {key} but its paired advantage is not shown "
                             f"({ci}, {d['wins']} rooms won / {d['losses']} lost of {d['n']})")
    out["tier"] = 1
    if sd_tier and out["chosen"] == incumbent and row.format(incumbent) in conds:
        base, ok = conds[row.format(incumbent)]["per_clip"], []
        for r, _, sd, _ in rows:
            if r == incumbent:
                continue
            d = {k: paired_difference(base, conds[row.format(r)]["per_clip"], k) for k in ("SD", key, "walk")}
            if d["SD"]["n"] and d["SD"]["ci95"][1] < 0 and all(d[k]["n"] and d[k]["mean"] >= 0 for k in (key, "walk")):
                ok.append((sd, r))
        if ok:
            out.update(chosen=min(ok)[1], tier=2)
            out["reason"] += (f"; tier 2: {out['chosen']} has SD shown lower than {incumbent}'s, {key} and walk not "
                              f"lower (of {[r for _, r in ok]})")
        else:
            out["reason"] += f"; tier 2: no run has SD shown lower with {key} and walk not lower: {incumbent} stays"
    return out


# The judge's checks in the order a video meets them (evaluate.apply_judge): the walk's six, then the destination's
# (what a model must find). The share of a row's videos passing each says where that row's videos fail.
def _checks(judge) -> dict:
    below = lambda key, limit: lambda m: None if m.get(key) is None else float(m[key] < limit)  # noqa: E731
    at_least = lambda key, limit: lambda m: None if m.get(key) is None else float(m[key] >= limit)  # noqa: E731
    verdict = lambda key: lambda m: m.get(key)  # noqa: E731
    return {"starts at the given view": verdict("start_ok"), "moves": verdict("DD"),
            "no teleport": verdict("no_teleport"), "no backtrack": verdict("no_backtrack"), "stops": verdict("stops"),
            "fits the room": verdict("fits_room"), "walk (all six)": verdict("walk"),
            "target in the final view": at_least("target_share", judge.prominent),
            "box on the target": at_least("box_IoU", judge.box_iou), "SD < 0.2": below("SD", 0.2),
            "IF(SD<0.2)": verdict("IF@0.2")}


def passes(metrics: dict, check: str, judge=None) -> bool:
    """Whether one scored video (a per-clip metrics dict of a results file) passes one of the judge's checks (a column
    of `check_table`, e.g. "target in the final view"); a check it was not measured on counts as failed."""
    from .evaluate import JUDGE

    checks = _checks(judge or JUDGE)
    if check not in checks:
        raise V4SError(f"unknown check {check!r}: choose one of {', '.join(checks)}")
    return bool(checks[check](metrics))


def check_shares(res: dict, judge=None) -> dict:
    """{condition: {check: share of its videos that pass it}} for the grounding rows of a results file: where each
    row's videos fail. A check a clip was not measured on (e.g. no box drawn: no box IoU) counts as failed, as the
    judge counts it. Shares of the stored numbers under `judge` (default: evaluate.JUDGE), as `rejudge` would."""
    from .evaluate import JUDGE

    checks = _checks(judge or JUDGE)
    out = {}
    for name, c in res["conditions"].items():
        clips = [m for m in c["per_clip"].values() if m.get("walk") is not None and "SD" in m]
        if clips:
            out[name] = {k: sum(bool(f(m)) for m in clips) / len(clips) for k, f in checks.items()}
            out[name]["n"] = len(clips)
    return out


def check_table(shares: dict) -> str:
    """`check_shares` as markdown: a row per condition, a column per check."""
    checks = [k for k in next(iter(shares.values())) if k != "n"] if shares else []
    lines = ["| condition | " + " | ".join(checks) + " | n |", "|---" * (len(checks) + 2) + "|"]
    for name, s in shares.items():
        lines.append(f"| {name} | " + " | ".join(f"{s[k]:.2f}" for k in checks) + f" | {s['n']} |")
    return "\n".join(lines)


def rejudge(res: dict, judge=None) -> dict:
    """A results file's verdicts (walk, IF, IF@0.2, ...) recomputed from its stored per-clip numbers with `judge`
    (default: the current `evaluate.JUDGE`), then its summaries and paired rows: thresholds change without
    generating or scoring anything again. Returns the updated results."""
    from .evaluate import JUDGE, apply_judge
    from .statistics import repeated_sampling, summarize

    judge = judge or JUDGE
    for name, c in res["conditions"].items():
        for m in c["per_clip"].values():
            if name in UNMARKED and m.get("SD") is not None:
                m.setdefault("marked", False)
            if "first_psnr" in m:  # written by this judge (older files lack the walk numbers)
                apply_judge(m, judge)
        c["summary"] = summarize(c["per_clip"])
    for name, t in res.get("tries", {}).items():
        for ms in t["per_try"].values():
            for m in ms:
                if "first_psnr" in m:
                    apply_judge(m, judge)
        res["tries"][name] = {**repeated_sampling(t["per_try"]), "per_try": t["per_try"]}
    res["paired"] = paired(res)
    res["judge"] = repr(judge)
    return res


def merge(results: list) -> tuple[dict, dict]:
    """One table from results files of the same judge, noise seed, evaluation set and checkpoints that scored
    different rooms (e.g. two machines growing the same table): per condition, the union of their clips, the
    first file's scores where both have a clip. Returns (the merged results, per condition: the clips both scored,
    how many verdicts differ and the largest |SD| and |PSNR| differences: how reproducible a row is)."""
    from .statistics import summarize

    first, agree = results[0], {}
    for other in results[1:]:
        for key in ("judge", "seed"):
            if other.get(key, 0) != first.get(key, 0):
                raise V4SError(f"cannot merge: {key} {other.get(key)!r} is not {first.get(key)!r}")
        if Path(other["data"]).parts[-2:] != Path(first["data"]).parts[-2:]:
            raise V4SError(f"cannot merge: evaluation set {other['data']} is not {first['data']}")
        for name, ck in other.get("checkpoints", {}).items():
            was = first.get("checkpoints", {}).get(name)
            if was and Path(was).parts[-2:] != Path(ck).parts[-2:]:
                raise V4SError(f"cannot merge: row {name!r} used {ck} in one file and {was} in the other")
    if any(r.get("tries") for r in results):
        raise V4SError("cannot merge files with repeated sampling (--tries) rows")
    res = {**first, "command": " && ".join(r["command"] for r in results),
           "seconds": sum(r["seconds"] for r in results), "conditions": {},
           "checkpoints": {k: v for r in results[::-1] for k, v in r.get("checkpoints", {}).items()}}
    for name in dict.fromkeys(n for r in results for n in r["conditions"]):
        rows = [r["conditions"][name]["per_clip"] for r in results if name in r["conditions"]]
        per = {k: m for row in rows[::-1] for k, m in row.items()}  # earlier files overwrite later ones
        both = [k for k in rows[0] if any(k in row for row in rows[1:])]
        pairs = [(rows[0][k], next(row[k] for row in rows[1:] if k in row)) for k in both]
        diff = lambda key: max([abs(a[key] - b[key]) for a, b in pairs if a.get(key) is not None  # noqa: E731
                                and b.get(key) is not None] or [0.0])
        agree[name] = {"both": len(both), "verdicts_differ": sum(a.get("IF@0.2") != b.get("IF@0.2") or
                                                                 a.get("walk") != b.get("walk") for a, b in pairs),
                       "max_abs_SD": diff("SD"), "max_abs_PSNR": diff("PSNR")}
        res["conditions"][name] = {"summary": summarize(per), "per_clip": per}
    res["paired"] = paired(res)
    return res, agree


def _mismatches(old: dict, conds: dict, data: Path, seed: int) -> tuple[list, dict]:
    """Why rows of the results file `old` cannot share a table with this run's conditions `conds`: (the reasons
    that hold for the whole file: judge, noise seed, evaluation set; {condition: the reasons for its row: checkpoint,
    tries}). Files move between machines, so sets and checkpoints compare by their last two path parts."""
    from .checkpoints import nearest_checkpoint
    from .evaluate import JUDGE

    table, rows = [], {}
    if old.get("judge") != repr(JUDGE):
        table.append(f"its judge {old.get('judge')} is not today's {JUDGE!r} (v4s tables --rejudge updates it)")
    if old.get("seed", 0) != seed:  # files written before the seed was stored used the default, 0
        table.append(f"its noise seed {old.get('seed', 0)} is not --seed {seed}")
    if Path(old["data"]).name != data.name or Path(old["data"]).parent.name != data.parent.name:
        table.append(f"its evaluation set {old['data']} is not --data {data}")
    for name, spec in conds.items():
        rows[name] = []
        was = old.get("checkpoints", {}).get(name)
        now = str(nearest_checkpoint(spec["ckpt"], spec.get("step"))) if "ckpt" in spec else None
        if was and now and Path(was).parts[-2:] != Path(now).parts[-2:]:
            rows[name].append(f"its row {name!r} used {was}, this run would use {now}")
        before = max(map(len, _kept(old, name).values()), default=0)  # tries per clip in the file (0: not run)
        if before > spec.get("tries", 1):
            # a row grows to more tries (the tries it holds are kept: try k has noise seed + k, so they are the
            # first tries of the larger run), never to fewer
            rows[name].append(f"its row {name!r} has {before} tries per clip, this run {spec.get('tries', 1)} "
                              "(--tries: a stored row grows to more tries, never to fewer)")
    return table, rows


def _resumable(out: Path, conds: dict, data: Path, seed: int) -> dict | None:
    """The results file `out` if this run may add to it (None if there is none yet). Rows scored with another judge,
    noise seed, number of tries, evaluation set or checkpoint cannot share a table with this run's: that is an
    error that says which, not a silent mix."""
    if not out.exists():
        return None
    old = json.loads(out.read_text())
    table, rows = _mismatches(old, conds, data, seed)
    why = table + [r for reasons in rows.values() for r in reasons]
    if why:
        raise V4SError(f"--resume cannot add to {out}: " + "; ".join(why) + ". Write to a new --out instead.")
    return old


def _kept(old: dict | None, name: str) -> dict:
    """clip -> the list of per-try metrics `old` holds for condition `name` (what a resumed run does not redo)."""
    if not old or name not in old["conditions"]:
        return {}
    if name in old.get("tries", {}):
        return dict(old["tries"][name]["per_try"])
    return {k: [m] for k, m in old["conditions"][name]["per_clip"].items()}


def keep_fuller_rows(prev: dict, per: dict, conds: dict, seed: int, data: Path) -> list:
    """The conditions of a deadline-cut run whose row `prev` (the results file --out) already holds with more clips,
    made as this run's would be (_mismatches: judge, noise seed, evaluation set, checkpoint, tries): the stored row is
    kept, not replaced by the part (the clips are generated deterministically, so the part repeats what is stored;
    `v4s tables --only X --also A B` runs A's and B's rows again, and a deadline used to overwrite their full rows
    with partial ones)."""
    table, rows = _mismatches(prev, {name: conds[name] for name in per}, data, seed)
    if table:
        return []
    stored = prev.get("conditions", {})
    return [name for name, clips in per.items()
            if name in stored and not rows[name] and len(stored[name]["per_clip"]) > len(clips)]


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (`kill`, a job scheduler, a session cut off) stops a table as Ctrl-C does, so `collect` writes what is
    done instead of losing an hour of scored rooms. Only the main thread may set a handler; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def collect(tasks, pending, deadline: float, t0: float, every: float = 60.0):
    """The results of `pending` (one per task, in clip-major order) until all are in, the deadline passes, or Ctrl-C /
    SIGTERM: ({condition: {clip: metrics}}, how many). A line every `every` s says how far it got (a table of hours
    otherwise prints nothing until it ends)."""
    import multiprocessing as mp

    per, done, shown = {}, 0, time.time()
    try:
        for (name, _, folder, _, _), r in zip(tasks, pending):
            left = deadline - (time.time() - t0) if deadline else None
            if left is not None and left <= 0:
                break
            try:
                per.setdefault(name, {})[Path(folder).name] = r.get(timeout=left)
            except mp.TimeoutError:
                break
            done += 1
            if time.time() - shown >= every:
                shown = time.time()
                print(f"{done} of {len(tasks)} tasks in {shown - t0:.0f} s", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {done} of {len(tasks)} tasks: writing them to --out (--resume runs the rest)",
              flush=True)
    return per, done


# long (~100 lines): the results file's whole run (resume, deadline, workers, summaries, pairs) in one place
def paper_tables(runs, data, out, device: str = "cuda", workers: int | None = None, only=None, seed: int = 0,
                 deadline: float = 0, max_clips: int = 0, main: str = "lite", tries: int = 1, command: str = "",
                 also=(), judge_device: str | None = None, resume: bool = False, ablated: str = "lite",
                 scales=(), sampling=()) -> dict:
    """Run the conditions (all, or the names in `only`) over the clips in data/id, data/ood, data/nav and write
    `out` (JSON): per condition a summary with 95% intervals and the per-clip metrics, the paired differences, the
    repeated-sampling curves with every try's metrics, and the checkpoint each row used. With `only` and an
    existing `out`, the conditions run replace theirs and the others are kept. `deadline` (s): stop and write what
    is done by then (so do Ctrl-C and SIGTERM) (clip-major order, so every condition is cut to the same clips). judge_device: where the judge
    renders and compares (default `device`): "cpu" judges on the worker's CPU core while the videos are generated
    on the GPU (16 processes time-slicing one GPU with the judge's small kernels can be slower than 16 cores).
    resume: keep every (condition, clip) `out` already holds and run only the rest, so a table too large for one
    device call grows over several (`_resumable` refuses a file made with another judge, seed, data or checkpoint,
    or with more tries than `tries`); a row stored with fewer tries grows: each clip gets only its missing tries."""
    import multiprocessing as mp

    from .checkpoints import nearest_checkpoint
    from .data import clip_folders
    from .evaluate import jsonable
    from .statistics import repeated_sampling, summarize

    data, out = Path(data), Path(out)
    splits = {s: data / s for s in ("id", "ood", "nav")}
    missing = [r for r in also if not (Path(runs) / r).is_dir()]
    if missing:
        raise V4SError(f"--also {missing}: no such run folder under {runs}")
    conds = conditions(Path(runs), main, tries, also, ablated, scales, sampling)
    if only is not None and (also or scales or sampling):  # the runs' own rows, the scales' and solvers' always run
        only = list(only) + [f"full: {r}" for r in also] + [scale_row(s) for s in scales] + [
            c for c in conds if c.startswith(SAMPLING_ROW)]
    if only:
        unknown = set(only) - set(conds)
        if unknown:
            raise V4SError(f"unknown condition(s) {sorted(unknown)}; the conditions are: {list(conds)}")
        conds = {k: v for k, v in conds.items() if k in only}
    old = _resumable(out, conds, data, seed) if resume else None
    kept = {name: _kept(old, name) for name in conds}  # resume: clip -> metrics already in `out`, not run again
    tasks = []
    for name, spec in conds.items():
        if not splits[spec["split"]].is_dir():
            raise V4SError(f"{splits[spec['split']]} is missing: --data is one evaluation set with id/, ood/ and nav/ "
                           "(tools/gpu_lite.sh data makes data/lite/val and data/lite/test)")
        folders = clip_folders(splits[spec["split"]])
        folders = folders[:max_clips] if max_clips else folders
        spec = {**spec, "judge_device": judge_device} if judge_device else spec
        for i, f in enumerate(folders):  # resume: only the clips, or the tries of a clip, `out` does not hold
            have = len(kept[name].get(f.name, []))
            if have < spec.get("tries", 1):
                tasks.append((i, name, {**spec, "first_try": have} if have else spec, str(f), device, seed))
    tasks = [t[1:] for t in sorted(tasks, key=lambda t: t[0])]
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers or os.cpu_count()) as pool, sigterm_as_interrupt():
        per, done = collect(tasks, [pool.apply_async(_task, (t,)) for t in tasks], deadline, t0)
        pool.terminate()
    res = {"command": command, "data": str(data), "seconds": round(time.time() - t0, 1), "conditions": {}, "tries": {},
           "seed": seed}
    prev = None
    if (only or resume) and out.exists():  # a partial run updates the conditions it ran and keeps the others
        prev = json.loads(out.read_text())
        res = {**prev, "command": prev["command"] + " && " + command, "seconds": prev["seconds"] + res["seconds"],
               "seed": seed}
    for name in per:  # resume: the clips scored before come first, then this run's (a grown clip: its tries after)
        per[name] = {**kept[name], **{k: kept[name].get(k, []) + ms for k, ms in per[name].items()}}
    if prev is not None and done < len(tasks):  # cut by the deadline: never trade a fuller stored row for a part
        for name in keep_fuller_rows(prev, per, conds, seed, data):
            print(f"{name}: the deadline stopped this run at {len(per.pop(name))} clips; the "
                  f"{len(prev['conditions'][name]['per_clip'])} clips --out holds for it (same checkpoint, judge, seed, "
                  "tries and rooms) are kept. --resume grows a stored row instead of running it again")
    res["checkpoints"] = {**res.get("checkpoints", {}), **{
        name: str(nearest_checkpoint(spec["ckpt"], spec.get("step"))) for name, spec in conds.items() if "ckpt" in spec}}
    for name, clips in per.items():
        first = {k: ms[0] for k, ms in clips.items()}
        res["conditions"][name] = {"summary": summarize(first), "per_clip": {k: jsonable(m) for k, m in first.items()}}
        if len(next(iter(clips.values()))) > 1:  # repeated sampling: any try succeeds / chosen by GT-free rules
            res["tries"][name] = {**repeated_sampling(clips),
                                  "per_try": {k: [jsonable(m) for m in ms] for k, ms in clips.items()}}
    res["paired"] = paired(res)
    from .evaluate import JUDGE

    res["judge"] = repr(JUDGE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(f"{done} of {len(tasks)} tasks in {round(time.time() - t0, 1)} s -> {out}"
          + (f" ({sum(map(len, kept.values()))} kept from before)" if old else ""))
    for name, c in res["conditions"].items():
        s = c["summary"]
        print(f"{name:36s} " + " ".join(f"{k}={s[k]['mean']:.3f}" for k in ("IF@0.2", "IF", "SD", "walk", "PSNR", "GT_PSNR")
                                          if k in s and s[k]["mean"] is not None) + f" n={s['n']}")
    from .statistics import paired_table

    print(paired_table(res["paired"]))
    print("Where the videos fail (share passing each check):")
    print(check_table(check_shares(res)))
    return res


# ----------------------------------------------------------------------------------------------- CLI
def add_cli(subparsers) -> None:
    p = subparsers.add_parser("tables", help="the paper's tables at lite scale: every condition on one evaluation set",
                              description="Generate and score every condition of the paper's tables (notebook 09).")
    p.add_argument("--runs", help="training runs: RUNS/lite (the shipped run) and the ablation runs beside it")
    p.add_argument("--data", help="one evaluation set: a folder with id/, ood/ and nav/ (e.g. data/lite/val)")
    p.add_argument("--rejudge", action="store_true", help="recompute the verdicts of the results file --out with "
                   "the current judge's thresholds (evaluate.Judge), from its stored numbers; nothing is generated")
    p.add_argument("--out", required=True, help="the results file, e.g. results/lite_tables.json")
    p.add_argument("--main", default="lite", help="the shipped run's folder name under --runs (default lite)")
    p.add_argument("--ablated", default="lite", help="the run the ablation runs RUN_nobox / RUN_contiguous were "
                   "trained beside: their 'full, same budget' row (default lite)")
    p.add_argument("--tries", type=int, default=1, help="repeated sampling: tries per clip of the full row (try k "
                   "has noise seed --seed + k - 1; with --resume, a row stored with fewer tries gets only the rest)")
    p.add_argument("--device", default="auto")
    p.add_argument("--judge-device", default=None, help="where the judge renders and compares (default: --device); "
                   "cpu: generate on the GPU, judge on each worker's CPU core")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU core)")
    p.add_argument("--only", nargs="+", help="condition names to run; the others in --out are kept")
    p.add_argument("--also", nargs="+", default=[], help="more runs under --runs, each with its own 'full: RUN' row "
                   "on the same rooms and noise seeds (with --only, these rows run too; cut by --deadline, a row "
                   "--out holds with more clips from the same checkpoint is kept; --resume grows rows instead)")
    p.add_argument("--scales", nargs="+", type=float, default=[], help="more guidance scales: a 'joint CFG, scale S' "
                   "row of --main for each, beside 'full (joint CFG)' at the default scale (the validation choice "
                   "of the scale: tables.choose_run(..., row='{}'); with --only, these rows run too)")
    p.add_argument("--sampling", nargs="+", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="other solver settings (scheduler, steps, shift): a 'sampling ...' row of --main for each, "
                        "e.g. --sampling steps=40 shift=6 scheduler=euler,steps=40, beside 'full (joint CFG)' "
                        "(the validation choice of the solver: tables.choose_run(..., row='{}'); with --only, these "
                        "rows run too)")
    p.add_argument("--deadline", type=float, default=0, help="seconds: stop and write what is done by then (Ctrl-C or SIGTERM also stop and write)")
    p.add_argument("--max-clips", type=int, default=0, help="at most this many clips per condition")
    p.add_argument("--merge", nargs="+", metavar="FILE", help="write one table to --out from these results files "
                   "(same judge, seed, set, checkpoints; different rooms): nothing is generated (tables.merge)")
    p.add_argument("--resume", action="store_true", help="keep the clips --out already holds for each condition and "
                   "score only the rest (a test set too large for one device call, over several)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    import shlex

    from .utils import get_device

    if args.rejudge or args.merge:  # neither generates: a setting of what to generate would be ignored, so refuse it
        given = [f for f, v in (("--scales", args.scales), ("--sampling", args.sampling), ("--also", args.also),
                                ("--only", args.only),
                                ("--tries", args.tries != 1), ("--resume", args.resume)) if v]
        if given:
            raise V4SError(f"{' '.join(given)} choose what to generate, and --rejudge / --merge generate nothing: "
                           "run them without these flags (to score more rows, run v4s tables without --rejudge / "
                           "--merge first)")
    if args.rejudge:
        out = Path(args.out)
        if not out.exists():
            raise V4SError(f"--rejudge: {out} does not exist; give the results file to update as --out")
        res = rejudge(json.loads(out.read_text()))
        res["command"] += " && " + shlex.join(["v4s", *getattr(args, "argv", [])])
        out.write_text(json.dumps(res, indent=1, default=float))
        print(f"re-judged {out} with {res['judge']}")
        return 0
    if args.merge:
        res, agree = merge([json.loads(Path(f).read_text()) for f in args.merge])
        res["command"] += " && " + shlex.join(["v4s", *getattr(args, "argv", [])])
        Path(args.out).write_text(json.dumps(res, indent=1, default=float))
        for name, c in res["conditions"].items():
            a = agree[name]
            print(f"{name:36s} n={c['summary']['n']}; scored in two files: {a['both']} clips, verdicts differ in "
                  f"{a['verdicts_differ']}, max |SD| {a['max_abs_SD']:.3g}, max |PSNR| {a['max_abs_PSNR']:.3g}")
        return 0
    if not args.runs or not args.data:
        raise V4SError("v4s tables needs --runs RUNS and --data SET (or --rejudge --out FILE)")
    paper_tables(args.runs, args.data, args.out, str(get_device(args.device)), args.workers, args.only, args.seed,
                 args.deadline, args.max_clips, args.main, args.tries, command=shlex.join(["v4s", *getattr(args, "argv", [])]),
                 also=args.also, judge_device=args.judge_device, resume=args.resume, ablated=args.ablated,
                 scales=args.scales, sampling=args.sampling)
    return 0

"""Numbers of tools/gpu_multi.sh from the runs' loss.jsonl (v4s train's log).

    python tools/multi_gpu_report.py losses RUN_1GPU RUN_NGPU [--out FILE]   # max |loss diff| of two loss curves
    python tools/multi_gpu_report.py speed GPUS RUN [--skip 5] [--out FILE]   # steps/s (and per GPU) of a run

Without --out the JSON goes to stdout only; with it, also to FILE (results/...).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_log(run) -> list[dict]:
    path = Path(run) / "loss.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: did the run start?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_losses(a, b) -> dict:
    """The two loss curves at their common steps: max and mean absolute difference."""
    la, lb = ({r["step"]: r["loss"] for r in read_log(run)} for run in (a, b))
    steps = sorted(set(la) & set(lb))
    if not steps:
        raise SystemExit(f"{a} and {b} share no logged step")
    diffs = [abs(la[s] - lb[s]) for s in steps]
    return {"runs": [str(a), str(b)], "steps": len(steps), "last_step": steps[-1],
            "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs),
            "final_loss": [la[steps[-1]], lb[steps[-1]]]}


def speed(gpus: int, run, skip: int = 5) -> dict:
    """Steps per second after the first `skip` steps (compilation, warm-up), from the log's `seconds` column."""
    log = [r for r in read_log(run) if "seconds" in r]
    if len(log) <= skip + 1:
        raise SystemExit(f"{run}: {len(log)} logged steps, need more than {skip + 1}")
    first, last = log[skip], log[-1]
    steps_per_s = (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])
    return {"run": str(run), "gpus": gpus, "steps": last["step"] - first["step"], "steps_per_s": steps_per_s,
            "steps_per_s_per_gpu": steps_per_s / gpus, "peak_gib": max(r.get("peak_gib") or 0 for r in log)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("losses")
    q.add_argument("run_a")
    q.add_argument("run_b")
    q.add_argument("--out")
    q = sub.add_parser("speed")
    q.add_argument("gpus", type=int)
    q.add_argument("run")
    q.add_argument("--skip", type=int, default=5)
    q.add_argument("--out")
    args = p.parse_args(argv)
    result = compare_losses(args.run_a, args.run_b) if args.what == "losses" else speed(args.gpus, args.run, args.skip)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

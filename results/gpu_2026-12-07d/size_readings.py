"""Readings 1 and 2 of README.md (written before the lease): the 17.1M lite_l against the 6.1M run of the shipped
model's first lease (../gpu_2026-12-06b), same rooms and recipe, by training loss at equal training seconds and at
equal steps, and by the condition gaps at the destination at equal steps.

    python results/gpu_2026-12-07d/size_readings.py LITE_L_LOSS.jsonl LITE_L_VALIDATION.jsonl

Training seconds: the time between consecutive loss rows, summed, leaving out gaps over 5 s (a validation probe, a
restart and its compilation), so both runs count only their training steps. --m-seconds-scale S multiplies the 6.1M
run's seconds by S: that run had an H200 and this lease an H100 (added after the lease, which the design had not
foreseen: 1.22 = the 6.1M model's 1,248 samples/s on the H200, ../gpu_2026-12-06b, over its 1,022 on an H100,
../gpu_2026-12-06), so reading 1 can also be read in H100 seconds; the criterion is reported both ways.
"""
import argparse

import numpy as np

from v4s_lite.train import read_log  # any .jsonl or .jsonl.xz file of rows

M_LOSS = "results/gpu_2026-12-06b/mixed_m_step013311/loss.jsonl.xz"
M_VAL = "results/gpu_2026-12-06b/lite/validation_mixed_m.jsonl"
GAPS = ("other room's context", "other instruction", "noise context", "shuffled context chunks")


def with_train_seconds(log):
    """(step, loss, training seconds so far) per row."""
    out, t, prev = [], 0.0, None
    for r in log:
        if prev is not None:
            dt = r["seconds"] - prev["seconds"]
            if 0 < dt <= 5:
                t += dt
        out.append((r["step"], r["loss"], t))
        prev = r
    return np.array(out)


def mean_loss(a, lo, hi, col):
    """The mean logged loss of the rows whose `col` (0: step, 2: training seconds) lies in [lo, hi)."""
    sel = a[(a[:, col] >= lo) & (a[:, col] < hi)]
    return float(sel[:, 1].mean()) if len(sel) else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("loss"), p.add_argument("validation")
    p.add_argument("--m-seconds-scale", type=float, default=1.0, help="the 6.1M run's seconds times this")
    a = p.parse_args(argv)
    L, M = with_train_seconds(read_log(a.loss)), with_train_seconds(read_log(M_LOSS))
    M[:, 2] *= a.m_seconds_scale
    last_step, last_t = int(L[-1, 0]), L[-1, 2]
    print(f"lite_l: {last_step} steps in {last_t:.0f} training seconds ({last_step / last_t:.2f} steps/s); "
          f"6.1M: {int(M[-1, 0])} in {M[-1, 2]:.0f} ({M[-1, 0] / M[-1, 2]:.2f} steps/s)")
    print("\n| steps | lite_l loss | 6.1M loss | lite_l - 6.1M |\n|---|---|---|---|")
    for lo in range(0, last_step, 1000):
        x, y = mean_loss(L, lo, lo + 1000, 0), mean_loss(M, lo, lo + 1000, 0)
        print(f"| {lo:,}-{min(lo + 1000, last_step):,} | {x:.3f} | {y:.3f} | {x - y:+.3f} |")
    # reading 1: lite_l's last 1,000 steps against the 6.1M run over the same training seconds
    t0 = float(L[L[:, 0] >= last_step - 1000][0, 2])
    x = mean_loss(L, last_step - 1000, last_step + 1, 0)
    y = mean_loss(M, t0, last_t + 1e-9, 2)
    steps_m = M[(M[:, 2] >= t0) & (M[:, 2] <= last_t), 0]
    scale = "" if a.m_seconds_scale == 1 else f" (the 6.1M run's seconds x {a.m_seconds_scale:g})"
    print(f"\nreading 1{scale}, equal training seconds {t0:.0f}-{last_t:.0f}: lite_l {x:.3f} (steps {last_step - 1000:,}-"
          f"{last_step:,}), 6.1M {y:.3f} (steps {int(steps_m.min()):,}-{int(steps_m.max()):,}): {x - y:+.3f}; "
          f"size pays per second (by the README's criterion, lower by > 0.005): {'yes' if x - y < -0.005 else 'no'}")
    gv = {r["step"]: r for r in read_log(a.validation)}
    mv = {r["step"]: r for r in read_log(M_VAL)}
    print("\nAt the destination (the walk's last latent frames), then over the whole walk:")
    print("\n| steps | " + " | ".join(f"{g}: lite_l / 6.1M" for g in GAPS) + " |\n|---|" + "---|" * len(GAPS))
    for prefix, where in (("end gap: ", ""), ("gap: ", ", whole walk")):
        for s in sorted(gv):
            cells = [f"{100 * gv[s][prefix + g]:+.2f}% / " + (f"{100 * mv[s][prefix + g]:+.2f}%" if s in mv else "-")
                     for g in GAPS]
            print(f"| {s:,}{where} | " + " | ".join(cells) + " |")
    top = max((gv[s]["end gap: shuffled context chunks"] for s in gv), default=float("nan"))
    print(f"\nreading 2: the largest shuffled-chunks gap at the destination {100 * top:+.2f}%; reads the geometry "
          f"(>= 1%): {'yes' if top >= 0.01 else 'no'}")


if __name__ == "__main__":
    main()

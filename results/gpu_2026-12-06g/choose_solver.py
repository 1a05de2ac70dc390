"""The solver rule of lease 2026-12-06g, written before the lease (README.md): which sampling settings, if any,
replace the defaults (UniPC, 20 steps, the run's shift 3), judged on the 200 validation rooms only.

    python results/gpu_2026-12-06g/choose_solver.py VAL_TABLES.json OUT_DIR

writes OUT_DIR/chosen_solver.txt: the adopted row's --sampling text (e.g. "steps=40"), or "none", and
OUT_DIR/solver_choice.txt: every row's figures and the reason."""
import sys
from pathlib import Path

from v4s_lite import tables
from v4s_lite.resources import read_json
from v4s_lite.statistics import format_difference, paired_difference

DEFAULT = "full (joint CFG)"


fmt = format_difference


def main(path, out):
    res = read_json(path)
    conds = res["conditions"]
    rows = [DEFAULT] + sorted(c for c in conds if c.startswith(tables.SAMPLING_ROW))
    lines = []
    for r in rows:
        s = conds[r]["summary"]
        lines.append(f"{r:40s} n={s['n']} IF@0.2={s['IF@0.2']['mean']:.3f} SD={s['SD']['mean']:.3f} "
                     f"walk={s['walk']['mean']:.3f} PSNR={s['PSNR']['mean']:.2f}")
        if r != DEFAULT:
            for k in ("IF@0.2", "SD", "walk"):
                lines.append(f"    vs the defaults, {k}: {fmt(paired_difference(conds[DEFAULT]['per_clip'], conds[r]['per_clip'], k))}")
    # tier 1: choose_run's rule (the highest IF(SD<0.2); replaces the defaults only with a 95% interval above 0);
    # tier 2: SD shown lower, IF(SD<0.2) and walk not lower on average; the lowest SD
    c = tables.choose_run(res, rows, incumbent=DEFAULT, row="{}", sd_tier=True)
    chosen, reason = c["chosen"], c["reason"]
    spec = "none" if chosen == DEFAULT else chosen[len(tables.SAMPLING_ROW):].replace(", ", ",")
    lines.append(f"chosen: {chosen} -> --sampling {spec}\nreason: {reason}")
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "chosen_solver.txt").write_text(spec + "\n")
    Path(out, "solver_choice.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:3])

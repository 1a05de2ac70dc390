"""A walk-aware selection rule for repeated sampling, checked offline on the stored tries (no new video): the rule
of README.md ("Does a walk-aware pick help?"), written before this script first ran.

    python results/cpu_2026-12-07/tries_walk.py results/cpu_2026-12-06/tries_val64_cpu.json.xz

The candidates read only what the adopted rule reads (the judge's pose search in the known room; never the target,
the instruction's answer or the true walk): "estimated path" picks the try whose estimated camera path is shortest
(path_m), "least turning" the one that turns least (turn_deg). The incumbent is the course's rule,
statistics.SELECTION_RULES["final-view residual"] (evaluate.PICK). Given the test tries' file
(../cpu_2026-12-06/tries_test64_cpu.json.xz) it prints the same figures as the report, which the rule allows only
for a candidate adopted on validation."""
import argparse

from v4s_lite.resources import read_json
from v4s_lite.statistics import SELECTION_RULES, format_difference, paired_difference

CANDIDATES = {"estimated path": lambda m: m["path_m"], "least turning": lambda m: m["turn_deg"]}
INCUMBENT = "final-view residual"
N = 3


def picks(per_try, rule):
    return {c: min(ms[:N], key=rule) for c, ms in per_try.items()}


def fmt(d):
    return format_difference(d, ", {wins} won / {losses} lost of {n}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    a = ap.parse_args()
    (_, t), = read_json(a.file)["tries"].items()
    per_try = t["per_try"]
    first = {c: ms[0] for c, ms in per_try.items()}
    inc = picks(per_try, SELECTION_RULES[INCUMBENT])
    rows = {"try 1": first, f"{INCUMBENT} (the course's rule)": inc}
    rows.update({k: picks(per_try, r) for k, r in CANDIDATES.items()})
    print(f"{a.file}: {len(per_try)} rooms, n = {N}")
    for name, p in rows.items():
        mean = lambda k: sum(m[k] for m in p.values()) / len(p)  # noqa: E731
        line = f"{name:36s} IF@0.2 {mean('IF@0.2'):.3f} walk {mean('walk'):.3f} SD {mean('SD'):.3f}"
        if name != "try 1":
            line += f" | vs try 1 IF@0.2 {fmt(paired_difference(first, p, 'IF@0.2'))}"
        if name in CANDIDATES:
            line += f" | vs the course's rule IF@0.2 {fmt(paired_difference(inc, p, 'IF@0.2'))}, walk {fmt(paired_difference(inc, p, 'walk'))}"
        print(line)
    adopted = [k for k in CANDIDATES if (d := paired_difference(inc, rows[k], "IF@0.2"))["mean"] > 0 and d["wins"] > d["losses"]]
    print("adopted on this file by the rule:", adopted or "none (the course's rule stays)")


if __name__ == "__main__":
    main()

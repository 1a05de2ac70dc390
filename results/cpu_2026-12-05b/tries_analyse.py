"""The repeated-sampling rule of README.md ("Issue 13: repeated sampling ..."), applied to a `v4s tables --tries N`
file: for each ground-truth-free rule and n, the picked try against try 1, paired on the same rooms; the "any of n"
ceiling; and, with --check FILE (a 1-try tables file of the same rooms, checkpoint and seed), that try 1 is that
file's sample, room by room.
    python tries_analyse.py tries_val64_cpu.json.xz [--check ../cpu_2026-12-05/val200_tables_cpu.json] [--rule R --n N]
    (--check-row: the 1-try file's row of the same checkpoint, "full: shipped" by default; "full: mixed_m_warm" for the
    6.1M model in ../gpu_2026-12-06c/lite/val200_tables_cpu.json.xz)
"""
import argparse

from v4s_lite.resources import read_json
from v4s_lite.statistics import SELECTION_RULES, paired_difference

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--check", default="")
ap.add_argument("--check-row", default="full: shipped")
ap.add_argument("--rule", default="", help="report only this rule (the test set: the rule adopted on validation)")
ap.add_argument("--n", type=int, default=0)
a = ap.parse_args()
res = read_json(a.file)
(name, t), = res["tries"].items()
per_try = t["per_try"]
n_tries = min(len(ms) for ms in per_try.values())
first = {c: ms[0] for c, ms in per_try.items()}
print(f"{a.file}: row {name!r}, {len(per_try)} rooms, {n_tries} tries each")
if a.check:
    old = read_json(a.check)["conditions"][a.check_row]["per_clip"]
    same = [c for c in first if c in old and first[c]["IF@0.2"] == old[c]["IF@0.2"] and
            abs(first[c]["SD"] - old[c]["SD"]) < 1e-9]
    print(f"determinism: try 1 equals {a.check}'s sample (IF@0.2 and SD) in {len(same)} of "
          f"{sum(c in old for c in first)} rooms")
for key in ("IF@0.2", "SD"):
    print(f"\n{key}: try 1 mean {sum(m[key] for m in first.values()) / len(first):.3f}")
    for n in range(2, n_tries + 1):
        if a.n and n != a.n:
            continue
        best = max if key == "IF@0.2" else min
        ceiling = {c: {key: best(m[key] for m in ms[:n])} for c, ms in per_try.items()}
        d = paired_difference(first, ceiling, key)
        print(f"  n={n} any-of-n ceiling: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
        for rule, f in SELECTION_RULES.items():
            if a.rule and rule != a.rule:
                continue
            picked = {c: min(ms[:n], key=f) for c, ms in per_try.items()}
            d = paired_difference(first, picked, key)
            better, worse = (d["wins"], d["losses"]) if key == "IF@0.2" else (d["losses"], d["wins"])  # SD: lower
            print(f"  n={n} {rule:20s} picked - try 1: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
                  f"  rooms better {better} / worse {worse} (sign test p {d['p_sign']:.2f})")

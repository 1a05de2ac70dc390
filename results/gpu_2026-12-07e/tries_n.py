"""How many tries (README.md, "The rule"): the adopted selection rule's pick among the first n tries, n = 1..8, on a
`v4s tables --tries 8` file; with --choose, the n rule written before the validation tries were read; with --adopted
N, that n against 3 tries and against try 1 (the test report). Rooms holding fewer tries than --tries (a growth
cut by a deadline) are left out, and counted.
    python results/gpu_2026-12-07e/tries_n.py results/gpu_2026-12-07e/tries_val64_8.json.xz --choose
    python results/gpu_2026-12-07e/tries_n.py results/gpu_2026-12-07e/tries_test200_8.json.xz --adopted N
"""
import argparse

import numpy as np

from v4s_lite.resources import read_json
from v4s_lite.statistics import SELECTION_RULES, format_difference, paired_difference, ranking_share

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--tries", type=int, default=8)
ap.add_argument("--choose", action="store_true", help="apply the n rule (validation only)")
ap.add_argument("--adopted", type=int, default=0, help="the n adopted on validation (the test report)")
ap.add_argument("--rule", default="final-view residual", help="the selection rule (statistics.SELECTION_RULES)")
ap.add_argument("--against", default="", help="with --adopted N: also the pick of --rule against this rule's pick "
                "of the same N tries, paired")
ap.add_argument("--print-n", action="store_true", help="with --choose: print only the n adopted (for a script)")
a = ap.parse_args()
(name, t), = read_json(a.file)["tries"].items()
per_try = {c: ms for c, ms in t["per_try"].items() if len(ms) >= a.tries}
say = (lambda *x, **k: None) if a.print_n else print  # noqa: E731
say(f"{a.file}: row {name!r}, {len(per_try)} rooms with {a.tries} tries ({len(t['per_try']) - len(per_try)} "
    f"with fewer left out), rule {a.rule!r}")
rule = SELECTION_RULES[a.rule]
pick = {n: {c: min(ms[:n], key=rule) for c, ms in per_try.items()} for n in range(1, a.tries + 1)}
anyof = {n: {c: {"IF@0.2": max(m["IF@0.2"] for m in ms[:n])} for c, ms in per_try.items()} for n in pick}
say("| n | any of n (ceiling) | the rule's pick: IF(SD<0.2) | SD | walk | PSNR |")
say("|---|---|---|---|---|---|")
mean = lambda d, k: float(np.nanmean([m[k] for m in d.values()]))  # noqa: E731
for n in pick:
    say(f"| {n} | {mean(anyof[n], 'IF@0.2'):.3f} | {mean(pick[n], 'IF@0.2'):.3f} | {mean(pick[n], 'SD'):.3f} | "
          f"{mean(pick[n], 'walk'):.3f} | {mean(pick[n], 'PSNR'):.2f} |")

# how well each rule ranks one room's tries (statistics.ranking_share)
for rname, key in SELECTION_RULES.items():
    share, rooms = ranking_share(per_try, key)
    say(f"ranking by {rname!r}: the success ranks first in {share:.2f} of pairs ({rooms} rooms)")


def against(b, a):
    """b's picked tries minus a's, paired by room, on the four headline numbers."""
    for k in ("IF@0.2", "SD", "walk", "PSNR"):
        print(f"  {k}: {format_difference(paired_difference(a, b, k))}")


if a.choose:
    star = max((5, 8), key=lambda n: (mean(pick[n], "IF@0.2"), -n))  # the highest mean; a tie: the smaller n
    d = paired_difference(pick[3], pick[star], "IF@0.2")
    adopt = d["wins"] > d["losses"]
    say(f"\nn* = {star} (P_5 {mean(pick[5], 'IF@0.2'):.3f}, P_8 {mean(pick[8], 'IF@0.2'):.3f}); P_{star} - P_3, "
          f"IF(SD<0.2): {format_difference(d)} -> {'adopt ' + str(star) if adopt else 'keep 3'} tries")
    say(f"pick of {star} - pick of 3:")
    if a.print_n:
        print(star if adopt else 3)
    else:
        against(pick[star], pick[3])
if a.adopted:
    for base in (3, 1):
        if base != a.adopted:
            print(f"\npick of {a.adopted} - {'pick of 3' if base == 3 else 'try 1'}, paired on {len(per_try)} rooms:")
            against(pick[a.adopted], pick[base])
    if a.against:
        other = {c: min(ms[:a.adopted], key=SELECTION_RULES[a.against]) for c, ms in per_try.items()}
        print(f"\n{a.rule!r} - {a.against!r}, the picks of {a.adopted} tries, paired on {len(per_try)} rooms:")
        against(pick[a.adopted], other)

"""Paired comparison of two runs' "full: RUN" rows in a `v4s tables` results file (same rooms, same noise seeds).

    python val_analyse.py TABLES.json RUN_A RUN_B     # prints B - A for IF(SD<0.2), SD, walk, PSNR
"""
import json
import sys

from v4s_lite.statistics import paired_difference, rooms_needed
from v4s_lite.tables import choose_run

res, a_name, b_name = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
c = choose_run(res, [a_name, b_name])
for r, m, sd, n in c["rows"]:
    print(f"{r}: IF(SD<0.2) {m:.3f}, SD {sd:.3f}, n={n}")
print("choose_run:", c["reason"])
a, b = (res["conditions"][f"full: {n}"]["per_clip"] for n in (a_name, b_name))
for key in ("IF@0.2", "SD", "walk", "PSNR"):
    d = paired_difference(a, b, key)
    print(f"{b_name} - {a_name}, {key}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], "
          f"higher in {d['wins']}, lower in {d['losses']} of {d['n']} (sign p = {d['p_sign']:.3f})")
for key in ("IF@0.2", "SD"):
    p = rooms_needed(a, b, key)
    print(f"{key}: per-room spread {p['sd']:.3f}, rooms for 80% power at this effect: {p['rooms']}")
print("seconds", res.get("seconds"))

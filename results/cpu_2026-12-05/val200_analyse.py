import json, sys
from v4s_lite.tables import choose_run
from v4s_lite.statistics import paired_difference, rooms_needed
res = json.load(open(sys.argv[1]))
c = choose_run(res, ["shipped", "mixed_lite"])
for r, m, sd, n in c["rows"]:
    print(f"{r}: IF(SD<0.2) {m:.3f}, SD {sd:.3f}, n={n}")
print("choice:", c["reason"])
a, b = res["conditions"]["full: shipped"]["per_clip"], res["conditions"]["full: mixed_lite"]["per_clip"]
for key in ("IF@0.2", "SD", "walk", "PSNR"):
    d = paired_difference(a, b, key)
    print(f"mixed_lite - shipped, {key}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], "
          f"higher in {d['wins']}, lower in {d['losses']} of {d['n']} (sign p = {d['p_sign']:.3f})")
for key in ("IF@0.2", "SD"):
    p = rooms_needed(a, b, key)
    print(f"{key}: per-room spread {p['sd']:.3f}, rooms for 80% at this effect: {p['rooms']}")
print("seconds", res.get("seconds"))

"""Box frames vs none at the shipped size, paired on the 200 test rooms (README.md beside this file).

The tables print IF@0.2, SD and PSNR; this adds the walk checks and a like-for-like IF: the box arm judged as the
no-box arm is (apply_judge with marked=False: the red box is not asked for; its SD still grounds at the box it
drew, or the final views' centre where none was found).
    python results/gpu_2026-12-06h/box_pairs.py results/gpu_2026-12-06h/lease/lite_tables_test.json.xz
"""
import json
import lzma
import sys

from v4s_lite.evaluate import JUDGE, apply_judge
from v4s_lite.statistics import paired_difference

path = sys.argv[1]
res = json.loads((lzma.open if path.endswith(".xz") else open)(path, "rt").read())
box = res["conditions"]["full, same budget"]["per_clip"]
none = res["conditions"]["without box frames"]["per_clip"]
box_unasked = {k: apply_judge({**m, "marked": False}) for k, m in box.items()}  # new dicts: `box` stays as judged
for m in list(box.values()) + list(none.values()) + list(box_unasked.values()):
    m["prominent"] = float(m["target_share"] >= JUDGE.prominent)  # what IF asks of the final view
print(f"{len(box)} rooms (box arm) / {len(none)} (no-box arm)")
print("| box frames minus none | box | none | mean | 95% interval | rooms higher / lower | sign p |")
print("|---|---|---|---|---|---|---|")
rows = [("IF(SD<0.2), as judged (box arm must mark the target)", box, "IF@0.2"),
        ("IF(SD<0.2), box not asked of either arm", box_unasked, "IF@0.2"),
        ("IF (no SD bar), box not asked", box_unasked, "IF"),
        ("SD", box, "SD"), ("walk (all six checks)", box, "walk"), ("no teleport", box, "no_teleport"),
        ("no backtrack", box, "no_backtrack"), ("fits the room", box, "fits_room"),
        ("target prominent in the final view", box, "prominent"), ("PSNR against the room (dB)", box, "PSNR"),
        ("SSIM", box, "SSIM")]
for name, a, key in rows:
    d = paired_difference(none, a, key)  # a (box) minus none
    mean_a = sum(a[k][key] for k in a) / len(a)
    mean_n = sum(none[k][key] for k in none) / len(none)
    lo, hi = d["ci95"]
    print(f"| {name} | {mean_a:.3f} | {mean_n:.3f} | {d['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
          f"{d['wins']} / {d['losses']} | {d['p_sign']:.2g} |")

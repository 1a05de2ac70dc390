"""Non-contiguous vs contiguous context at the shipped size, paired on the 200 test rooms (README.md beside this file).

The tables print IF@0.2, SD and PSNR; this adds the walk's checks and what IF asks of the final view. Both arms draw
box frames, so both are judged marked (as the tables judged them).
    python results/gpu_2026-12-07/contig_pairs.py results/gpu_2026-12-07/lease/lite_tables_test.json.xz
"""
import json
import lzma
import sys

from v4s_lite.evaluate import JUDGE
from v4s_lite.statistics import paired_difference

path = sys.argv[1]
res = json.loads((lzma.open if path.endswith(".xz") else open)(path, "rt").read())
noncontig = res["conditions"]["full, same budget"]["per_clip"]
contig = res["conditions"]["contiguous context"]["per_clip"]
for m in list(noncontig.values()) + list(contig.values()):
    m["prominent"] = float(m["target_share"] >= JUDGE.prominent)  # what IF asks of the final view
    m["box_on_target"] = float(m["box_IoU"] >= JUDGE.box_iou)  # and of its red box (the tables' columns)
    m["SD<0.2"] = float(m["SD"] < 0.2)
print(f"{len(noncontig)} rooms (non-contiguous arm) / {len(contig)} (contiguous arm)")
print("| non-contiguous minus contiguous | non-contiguous | contiguous | mean | 95% interval | rooms higher / lower "
      "| sign p |")
print("|---|---|---|---|---|---|---|")
for name, key in [("IF(SD<0.2)", "IF@0.2"), ("IF (no SD bar)", "IF"), ("SD", "SD"), ("SD < 0.2", "SD<0.2"),
                  ("walk (all six checks)", "walk"), ("no teleport", "no_teleport"), ("no backtrack", "no_backtrack"),
                  ("stops", "stops"), ("fits the room", "fits_room"),
                  ("target prominent in the final view", "prominent"), ("box on the target", "box_on_target"),
                  ("PSNR against the room (dB)", "PSNR"), ("SSIM", "SSIM")]:
    d = paired_difference(contig, noncontig, key)  # non-contiguous minus contiguous
    mean_n = sum(noncontig[k][key] for k in noncontig) / len(noncontig)
    mean_c = sum(contig[k][key] for k in contig) / len(contig)
    lo, hi = d["ci95"]
    print(f"| {name} | {mean_n:.3f} | {mean_c:.3f} | {d['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
          f"{d['wins']} / {d['losses']} | {d['p_sign']:.2g} |")

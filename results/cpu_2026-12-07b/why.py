"""Why the colour rule does not pick successes (README.md): what the model's boxes hold against where they are.
    python results/cpu_2026-12-07b/why.py results/cpu_2026-12-07b/tries_val64_cpu.json.xz
"""
import sys

import numpy as np

from v4s_lite.evaluate import JUDGE
from v4s_lite.resources import read_json

t = read_json(sys.argv[1])["tries"]["full (joint CFG)"]["per_try"]
tries = [m for ms in t.values() for m in ms]
measured = lambda m: m.get("box_colour") is not None and np.isfinite(m["box_colour"])  # noqa: E731
boxed = lambda m: (m.get("box_IoU") or 0) >= JUDGE.box_iou  # noqa: E731
col = [m for m in tries if measured(m)]
print(f"{len(tries)} tries on {len(t)} rooms; box_colour measured (a chromatic colour named) in {len(col)}")
for lo, hi in ((0, 0.05), (0.05, 0.3), (0.3, 1.01)):
    g = [m for m in col if lo <= m["box_colour"] < hi]
    print(f"box_colour in [{lo}, {hi}): {len(g):3d} tries; box on the target {np.mean([boxed(m) for m in g]):.2f}, "
          f"walk {np.mean([m['walk'] for m in g]):.2f}, SD<0.2 {np.mean([m['SD'] < 0.2 for m in g]):.2f}, "
          f"IF(SD<0.2) {np.mean([m['IF@0.2'] for m in g]):.2f}")
pairs = []
for ms in t.values():
    won = [m["box_colour"] for m in ms if measured(m) and boxed(m)]
    lost = [m["box_colour"] for m in ms if measured(m) and not boxed(m)]
    if won and lost:
        pairs.append(np.mean([(w > f) + 0.5 * (w == f) for w in won for f in lost]))
print(f"within a room, a try with its box on the target has the larger colour share in {np.mean(pairs):.2f} of "
      f"pairs ({len(pairs)} rooms)")

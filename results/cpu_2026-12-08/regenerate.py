"""Score again the tries of chosen rooms of an evaluation set, each room with the context draw it had in the full
set: `ClipDataset` keys a room's non-contiguous context draw by its position in the sorted folder (docs/DATA.md), so
a folder holding only some rooms gives them other contexts, hence other videos (the first attempt here, through
`mixed_rooms.py select`, did that: README.md). Runs `v4s tables`' own task on each room's folder in place.
    python results/cpu_2026-12-08/regenerate.py STORED.json[.xz] DATA/id OUT.json [--workers 2]
writes OUT.json in the layout of `v4s tables` (the "full (joint CFG)" row, 3 tries) for the rooms whose stored 3
tries differ in IF(SD<0.2).
"""
import argparse
import json
import multiprocessing as mp
from pathlib import Path

from v4s_lite.evaluate import jsonable
from v4s_lite.resources import read_json
from v4s_lite.tables import _task, conditions

ap = argparse.ArgumentParser()
ap.add_argument("stored")
ap.add_argument("data")
ap.add_argument("out")
ap.add_argument("--workers", type=int, default=2)
a = ap.parse_args()
(row, t), = read_json(a.stored)["tries"].items()
mixed = sorted(c for c, ms in t["per_try"].items() if len({m["IF@0.2"] for m in ms[:3]}) > 1)
spec = conditions(Path("runs"), main="shipped", tries=3)[row]
tasks = [(row, spec, str(Path(a.data) / c), "cpu", 0) for c in mixed]
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(a.workers) as pool:
        per = dict(zip(mixed, pool.map(_task, tasks)))
    Path(a.out).write_text(json.dumps({"tries": {row: {"per_try": {c: [jsonable(m) for m in ms]
                                                                   for c, ms in per.items()}}}}))
    print(f"{len(per)} rooms scored again: {a.out}")

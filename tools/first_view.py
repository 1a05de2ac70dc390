"""Does the model only keep what it already sees? The target's share of each test walk's true first frame, against
where the model's walks end (results/cpu_2026-12-03e/README.md).

    python tools/first_view.py --data data/lite/test/id --tables results/gpu_2026-12-03d/lite_tables_test.json.xz

For every clip folder: render the true first frame (meta.json's first target pose) and count the target's pixels.
Then, per grounding row of the results file: the share of videos whose final view holds the target (the judge's
"prominent" threshold) among rooms whose first frame shows it, and among rooms whose first frame does not.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from v4s_lite.data import clip_folders
from v4s_lite.evaluate import JUDGE
from v4s_lite.render import render
from v4s_lite.resources import read_json
from v4s_lite.scene import Scene
from v4s_lite.tables import passes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the clip folders the results file scored (e.g. data/lite/test/id)")
    p.add_argument("--tables", required=True, help="a v4s tables results file")
    a = p.parse_args(argv)
    shown = {}
    for folder in clip_folders(Path(a.data)):
        meta = json.loads((folder / "meta.json").read_text())
        out = render(Scene.from_dict(meta["scene"]), np.asarray(meta["target"]["c2w"][0]), np.asarray(meta["K"]),
                     meta["width"], meta["height"], antialias=1, coverage=False)
        shown[folder.name] = float((out.instance[0] == meta["target_id"]).mean()) >= JUDGE.prominent
    res = read_json(a.tables)  # plain or .json.xz (results/ keeps large tables compressed)
    print(f"the target fills >= {JUDGE.prominent:.0%} of the true first frame in {sum(shown.values())} of {len(shown)} rooms")
    print("| condition | target in the final view | where the first frame shows it | where it does not |")
    print("|---|---|---|---|")
    for name, c in res["conditions"].items():
        rows = [(shown[k], passes(m, "target in the final view")) for k, m in c["per_clip"].items() if k in shown]
        if not rows or "target_share" not in next(iter(c["per_clip"].values())):
            continue
        seen, end = np.array(rows).T
        print(f"| {name} | {end.mean():.2f} ({len(end)}) | {end[seen].mean():.2f} ({seen.sum()}) | "
              f"{end[~seen].mean():.2f} ({(~seen).sum()}) |")


if __name__ == "__main__":
    main()

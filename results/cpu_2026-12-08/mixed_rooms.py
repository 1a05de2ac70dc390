"""The rooms where a selection rule can change IF(SD<0.2): those whose stored tries differ in it (README.md).
    python results/cpu_2026-12-08/mixed_rooms.py select STORED.json[.xz] DATA/id OUT_DIR
        links the clip folders of those rooms into OUT_DIR/id. Not for scoring them again: `v4s tables --data OUT_DIR`
        gives each room another context draw (keyed by its position in the folder) and so other videos; use
        regenerate.py, which scores them in place
    python results/cpu_2026-12-08/mixed_rooms.py merge STORED.json[.xz] REGENERATED.json OUT.json
        checks that each regenerated try reproduces the stored try's IF(SD<0.2), then writes the stored file with
        those rooms' tries replaced by the regenerated ones (the other rooms keep their stored tries: every rule
        picks the same IF(SD<0.2) there), for results/gpu_2026-12-07e/tries_n.py
"""
import json
import sys
from pathlib import Path

from v4s_lite.resources import read_json

mode, stored = sys.argv[1], read_json(sys.argv[2])
(row, t), = stored["tries"].items()
mixed = sorted(c for c, ms in t["per_try"].items() if len({m["IF@0.2"] for m in ms[:3]}) > 1)
if mode == "select":
    out = Path(sys.argv[4]) / "id"
    out.mkdir(parents=True, exist_ok=True)
    for c in mixed:
        if not (out / c).exists():
            (out / c).symlink_to((Path(sys.argv[3]) / c).resolve())
    print(f"{len(mixed)} of {len(t['per_try'])} rooms hold tries that differ in IF(SD<0.2): linked into {out}")
elif mode == "merge":
    (_, new), = read_json(sys.argv[3])["tries"].items()
    bad = [(c, k, m["IF@0.2"], new["per_try"][c][k]["IF@0.2"]) for c in mixed for k, m in enumerate(t["per_try"][c][:3])
           if c in new["per_try"] and new["per_try"][c][k]["IF@0.2"] != m["IF@0.2"]]
    missing = [c for c in mixed if c not in new["per_try"] or len(new["per_try"][c]) < 3]
    print(f"{len(mixed) - len(missing)} of {len(mixed)} rooms regenerated; tries whose IF(SD<0.2) differs from the "
          f"stored one: {bad if bad else 'none'}")
    if missing:
        sys.exit(f"not regenerated yet: {missing}")
    for c in mixed:
        t["per_try"][c] = new["per_try"][c][:3]
    Path(sys.argv[4]).write_text(json.dumps(stored))
    print(f"wrote {sys.argv[4]}")
else:
    sys.exit("mode: select or merge")

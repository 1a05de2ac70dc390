"""The category verifier on known videos (README.md): for validation rooms, two videos through the lite codec, each
scored by the judge (evaluate.score_clip): the true walk, and a perfect walk to an object of another category (one
of the target's own colour where the room has one: the case the colour rule cannot tell). Printed: room_category
(the verifier's probability that the room under the drawn box holds the named category), the agreement of the rule
"named thing, in the box and in the room", and IF@0.2.
    python results/cpu_2026-12-08/category_check.py data/lite/val/id [max rooms] [verifier folder]
"""
import json
import sys
from pathlib import Path

import numpy as np

from v4s_lite.calibration import approach_video, codec_round_trip, ground_truth_video
from v4s_lite.codec import LiteCodec
from v4s_lite.evaluate import room_estimator, score_clip
from v4s_lite.scene import Scene
from v4s_lite.statistics import SELECTION_RULES
from v4s_lite.verifier import CategoryVerifier, shipped_verifier

RULE = "named thing, in the box and in the room"
n_max = int(sys.argv[2]) if len(sys.argv) > 2 else 10**9
verifier = CategoryVerifier.from_pretrained(sys.argv[3]).eval() if len(sys.argv) > 3 else shipped_verifier()
codec, rows = LiteCodec(), []
for f in sorted(Path(sys.argv[1]).iterdir())[:n_max]:
    meta = json.loads((f / "meta.json").read_text())
    scene = Scene.from_dict(meta["scene"])
    target = scene.object(meta["target_id"])
    others = [o for o in scene.objects if o.category != target.category]
    if not others:
        continue
    other = next((o for o in others if o.color == target.color), others[0])
    est = room_estimator(meta, codec)
    ms = [score_clip(meta, codec_round_trip(v, codec), est, lpips=False, verifier=verifier)
          for v in (ground_truth_video(meta), approach_video(meta, other.id))]
    rows.append([[m["room_category"], m["IF@0.2"], other.color == target.color] for m in ms])
    pick = "true" if SELECTION_RULES[RULE](ms[0]) < SELECTION_RULES[RULE](ms[1]) else "other"
    print(f"{f.name} {meta['instruction']:52s} true {ms[0]['room_category']:.2f}  {other.name:16s} "
          f"{ms[1]['room_category']:.2f}  rule picks {pick}", flush=True)
a = np.array(rows, float)  # (rooms, video, [room_category, IF@0.2, same colour])
same = a[:, 1, 2] == 1
print(f"\n{len(a)} rooms; mean room_category: true walk {a[:, 0, 0].mean():.2f}, walk to another category "
      f"{a[:, 1, 0].mean():.2f}; the true walk's is larger in {(a[:, 0, 0] > a[:, 1, 0]).sum()} of {len(a)} "
      f"({(a[same, 0, 0] > a[same, 1, 0]).sum()} of the {same.sum()} where the other object has the target's colour)")

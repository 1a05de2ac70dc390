"""The agreement check on known videos (../gpu_2026-12-07g/README.md): for the validation rooms whose instruction
names a chromatic colour, three videos through the lite codec, each scored by the judge (evaluate.score_clip):
the true walk, a perfect walk to an object of another colour, and that walk with the boxed object repainted in the
named colour (calibration.painted_video: a painted find). Printed: box_colour (the drawn box's pixels), room_colour
(the room re-rendered under the box), their minimum (the rule "named colour, in the box and in the room") and IF@0.2.
Needs the rooms: v4s make-data --task grounding --split id --scenes 16 --seed 300000 (301000, 302000, 303000)
--clip-config lite --device cpu --out data/lite/val/id
    python results/cpu_2026-12-07c/room_colour_check.py data/lite/val/id
"""
import json
import sys
from pathlib import Path

import numpy as np

from v4s_lite.bbox import NEUTRAL
from v4s_lite.calibration import approach_video, codec_round_trip, ground_truth_video, painted_video
from v4s_lite.codec import LiteCodec
from v4s_lite.evaluate import room_estimator, score_clip
from v4s_lite.language import named_colour
from v4s_lite.scene import Scene
from v4s_lite.statistics import SELECTION_RULES

RULE = "named colour, in the box and in the room"
codec, rows = LiteCodec(), []
for f in sorted(Path(sys.argv[1]).iterdir()):
    meta = json.loads((f / "meta.json").read_text())
    colour = named_colour(meta["instruction"])
    scene = Scene.from_dict(meta["scene"])
    others = [o.id for o in scene.objects if o.color != colour]
    if colour is None or colour in NEUTRAL or not others:
        continue
    est = room_estimator(meta, codec)
    ms = [score_clip(meta, codec_round_trip(v, codec), est, lpips=False)
          for v in (ground_truth_video(meta), approach_video(meta, others[0]), painted_video(meta, others[0], colour))]
    rows.append([[m["box_colour"], m["room_colour"], min(m["box_colour"], m["room_colour"]), m["IF@0.2"]] for m in ms])
    pick = min(range(3), key=lambda i: SELECTION_RULES[RULE](ms[i]))
    print(f"{f.name} {meta['instruction']:48s} " + "  ".join(
        f"{n} {m['box_colour']:.2f}/{m['room_colour']:.2f}" for n, m in zip(("true", "other", "painted"), ms))
        + f"  rule picks {('true', 'other', 'painted')[pick]}", flush=True)
a = np.array(rows)  # (rooms, video, [box, room, min, IF@0.2])
print(f"\n{len(a)} rooms; mean box_colour / room_colour / min / IF@0.2:")
for i, n in enumerate(("true walk", "walk to another object", "that walk, painted")):
    print(f"  {n:24s} " + " / ".join(f"{x:.2f}" for x in a[:, i].mean(0)))
print(f"the true walk's min is the largest in {(a[:, 0, 2] > a[:, 1:, 2].max(1)).sum()} of {len(a)} rooms; "
      f"box_colour alone ranks the painted walk above the true one in {(a[:, 2, 0] > a[:, 0, 0]).sum()}")

"""The colour check on known videos (README.md): for the validation rooms whose instruction names a chromatic colour,
the share of the box in that colour for the true walk and for a perfect walk to another object, both through the lite
codec. Needs the rooms: v4s make-data --task grounding --split id --scenes 16 --seed 300000 (301000, 302000, 303000)
--clip-config lite --device cpu --out data/lite/val/id
    python results/cpu_2026-12-07b/colour_check.py data/lite/val/id
"""
import json
import sys
from pathlib import Path

import numpy as np

from v4s_lite.bbox import NEUTRAL, box_colour_share, detect_red_box
from v4s_lite.calibration import approach_video, codec_round_trip, ground_truth_video
from v4s_lite.codec import LiteCodec
from v4s_lite.config import ClipConfig
from v4s_lite.language import named_colour
from v4s_lite.scene import Scene

codec, rows, counts = LiteCodec(), [], {"no colour": 0, "white, gray or black": 0}
for f in sorted(Path(sys.argv[1]).iterdir()):
    meta = json.loads((f / "meta.json").read_text())
    colour = named_colour(meta["instruction"])
    if colour is None or colour in NEUTRAL:
        counts["no colour" if colour is None else "white, gray or black"] += 1
        continue
    n_box = ClipConfig(**meta["clip_config"]).box_frames
    scene = Scene.from_dict(meta["scene"])
    other = next(o.id for o in scene.objects if o.id != meta["target_id"])  # the calibration's first other object
    shares = []
    for video in (ground_truth_video(meta), approach_video(meta, other, 0)):
        frames = codec_round_trip(video, codec)[-n_box:]
        boxes, _ = detect_red_box(frames)
        found = boxes[~np.isnan(boxes).any(1)]
        shares.append(box_colour_share(frames, np.median(found, 0) if len(found) else None, colour))
    same = scene.object(other).color == colour
    rows.append((*shares, same))
    print(f"{f.name}  {meta['instruction']:55s} true walk {shares[0]:.2f}  other object ({scene.object(other).color}) "
          f"{shares[1]:.2f}")
a = np.array(rows, float)
diff = a[:, 2] == 0
print(f"\n{len(a)} rooms name a chromatic colour (left out: {counts}); mean share: true walk {a[:, 0].mean():.2f}, "
      f"walk to another object {a[:, 1].mean():.2f}; the true walk's is larger in {(a[:, 0] > a[:, 1]).sum()} of "
      f"{len(a)} ({(a[diff, 0] > a[diff, 1]).sum()} of {diff.sum()} where the other object has another colour)")

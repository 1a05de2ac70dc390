"""How many rendered frames the judge passes through the codec to score one video (issue 14: why scoring a 5B video
did not finish in results/gpu_2026-12-03c).

    PYTHONPATH=. python benchmarks/judge_codec_frames.py [CLIP]     # default data/lite/val/id/grounding_300003

`PoseEstimator(degrade=codec)` compares the video with renders passed through the same codec (library views,
refinement and Levenberg-Marquardt renders, the blend's sub-step renders). With the lite codec that is cheap; with
Wan2.2's VAE at 416x256 every one of those frames is a VAE encode + decode.
2026-12-03, this machine (one CPU core, the lite codec, the codec's ground truth of grounding_300003): 25 video
frames at 104x64, 53 degrade calls, 5,958 frames through the codec (~240 per video frame), 29.6 s.
"""
import json
import sys
import time

import torch

from v4s_lite.calibration import codec_round_trip, ground_truth_video
from v4s_lite.codec import LiteCodec
from v4s_lite.evaluate import score_clip
from v4s_lite.poses import PoseEstimator
from v4s_lite.scene import Scene

torch.set_num_threads(1)
clip = sys.argv[1] if len(sys.argv) > 1 else "data/lite/val/id/grounding_300003"
meta = json.load(open(clip + "/meta.json"))
codec = LiteCodec()
video = codec_round_trip(ground_truth_video(meta), codec)
est = PoseEstimator(Scene.from_dict(meta["scene"]), meta["K"], meta["width"], meta["height"], degrade=codec)
inner, calls, frames = est.degrade, [0], [0]


def counting(x):  # the estimator's degrade, counted
    calls[0] += 1
    frames[0] += len(x)
    return inner(x)


est.degrade = counting
t = time.time()
score_clip(meta, video, est, lpips=False)
print(f"{len(video)} video frames at {meta['width']}x{meta['height']}: {calls[0]} degrade calls, {frames[0]} frames "
      f"through the codec, {time.time() - t:.1f} s")

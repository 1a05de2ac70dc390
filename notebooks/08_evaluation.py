# %% [markdown]
# # 08 · Evaluation against the true room: poses, grounding and consistency
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/08_evaluation.ipynb)
#
# The paper scores generated videos through estimated reconstructions and a judge. Our rooms are known exactly,
# so we can do better: find the camera of every generated frame in the true room (render-and-compare), then
# judge the video directly. The judge must measure the paper's task, **a walk from the given first frame through
# the room to the target, which it then marks**: a video that holds a good view of the target still, or jumps
# straight there, must not pass. Before trusting the judge on a model, we check it on videos whose verdict we
# know: the ground truth (also through the course's codec, the best a lite model could output) and nine ways to
# look right without doing the task.
#
# **You will learn:** render-and-compare pose estimation (a render library, Levenberg-Marquardt, a path that does
# not teleport); the walk checks; IF and SD as separate judgements and the headline IF(SD<0.2); a calibration
# suite with the verdict each video must get; `v4s eval`.
#
# **You need:** a CPU, about 3 minutes in quick mode on 2 cores. **Comes before:** `07_box_supervision` (the red box
# and its detector).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # quick mode: a short walk (9 target frames); full mode: the QUICK clip config (17 frames)
device = "auto"   # the renderer and the pose search run on the CPU here
seed = 8          # the room; its final view also shows another object (for the wrong-box test)
checkpoint = ""   # a trained model for the last section; "" = the course's shipped model (data/v4s-lite)

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite import evaluate as E
from v4s_lite import poses
from v4s_lite.codec import LiteCodec
from v4s_lite.config import QUICK, ClipConfig
from v4s_lite.data import clip_meta
from v4s_lite.exercises import check_exercise
from v4s_lite.plotting import frame_strip, topdown_map
from v4s_lite.resources import shipped_model
from v4s_lite.scene import make_scene
from v4s_lite.utils import seed_everything
from v4s_lite.world import make_clip

seed_everything(seed)
torch.set_num_threads(1)  # same float results on every machine
cfg = ClipConfig(width=104, height=64, scan_frames=17, context_chunks=2, target_chunks=2, box_frames=4) if quick else QUICK

# %% [markdown]
# ## A clip and its perfect answer
# `meta` is exactly what a clip folder's `meta.json` holds: the scene recipe, the camera intrinsics, the
# ground-truth target walk. `ground_truth_video` renders that walk and draws the red box on the box frames:
# what a perfect model would generate.

# %%
scene = make_scene(seed)
clip = make_clip(scene, "grounding", cfg, seed=seed)
meta = json.loads(json.dumps(clip_meta(clip, cfg)))
gt = E.ground_truth_video(meta)
target = scene.object(meta["target_id"])
print(f"{meta['instruction']!r}  target {target.id} ({target.name}), {len(gt)} frames, last {cfg.box_frames} boxed")
fig = frame_strip(gt, n=6)

# %% [markdown]
# ## Pose estimation, step by step
# **1. A render library.** At every free floor position of a 0.5 m grid, the room is rendered once as a small cube
# map (6 faces of 32x32); `grid_sample` warps it into a 26x16 view for each of 24 headings x 5 tilts (down to -54
# degrees: a camera close to a stool looks steeply down). Six renders per position instead of 120.

# %%
est = E.PoseEstimator(scene, meta["K"], meta["width"], meta["height"])
grid, lib = est.library()
print(f"library: {len(grid)} views ({len(grid) // (est.n_yaw * len(est.pitches))} positions x {est.n_yaw} headings x "
      f"{len(est.pitches)} tilts), each {est.coarse[0]}x{est.coarse[1]} px")

# %% [markdown]
# **2. Coarse match.** Each frame, shrunk to 26x16 and blurred (a pixel of misalignment should cost little), is
# compared with every library view by the mean absolute difference; the red box's pixels are left out (the room has
# no box). **3. Refinement.** The best candidates are refined by Levenberg-Marquardt on the image difference:
# Gauss-Newton steps $\delta = -(J^\top J + \lambda\,\mathrm{diag}\,J^\top J)^{-1} J^\top r$ with the Jacobian $J$
# from finite differences (one extra render per parameter: x, y, yaw, pitch; the eye height stays fixed), first at
# 26x16, then at 52x32, where neighbouring frames also offer their poses. **4. A path, not a pile of poses.**
# Among each frame's refined candidates, one per frame is chosen by dynamic programming (Viterbi): least residual
# plus a price on moves longer than 1.5 m or turns over 57 degrees between consecutive distinct frames. A blurred
# frame whose best single match lies across the room is pulled back by its neighbours; a video that really jumps
# pays and shows it. **5. A local search** around each pose (a small grid of steps: 0.3 m, 15 degrees of heading,
# 9 of tilt) catches a frame stuck in the valley next to the right one.
# The **residual** is the final mean absolute pixel difference: how well the room explains the frame.
# A video decoded by a codec is blurred, so `PoseEstimator(..., degrade=codec)` compares it with renders passed
# through the same codec: a blurred frame against an equally blurred render. The lite codec also shows one picture
# per 4 frames, their mean: a walk's 4 views laid over each other. No single pose explains such a picture, so each
# is compared with the mean of 4 renders along the walk through it (interpolated towards its neighbours' poses).
# On 8 validation rooms this halved the median pose error of the codec's ground truth (0.22 to 0.10 m against
# the codec-aligned walk; `results/judge_2026-12-03.md`).

# %%
i = len(gt) // 2
small, w = est.prepare(gt[i:i + 1], est.coarse)
d = (lib - poses.blur(small).flatten()).abs().mean(1)
top = torch.topk(-d, 3).indices.numpy()
true = poses.pose_params(np.asarray(meta["target"]["c2w"])[i:i + 1])[0]
print(f"frame {i}: true pose x {true[0]:.2f} y {true[1]:.2f} yaw {np.degrees(true[3]):.0f} deg pitch {np.degrees(true[4]):.0f} deg")
for r, j in enumerate(top):
    g = grid[j]
    print(f"  coarse #{r + 1}: x {g[0]:.2f} y {g[1]:.2f} yaw {np.degrees(g[3]):.0f} pitch {np.degrees(g[4]):.0f}  distance {d[j]:.3f}")

# %%
pose = est.estimate(gt, n_final=cfg.box_frames)
pos_err, ang_err = E.pose_errors(pose.c2w, meta["target"]["c2w"])
print(f"frame {i} refined: position error {pos_err[i]:.3f} m, angle error {ang_err[i]:.2f} deg, residual {pose.residual[i]:.3f}")
print(f"all {len(gt)} frames: median position error {np.median(pos_err):.3f} m, median angle error {np.median(ang_err):.2f} deg, "
      f"worst {pos_err.max():.2f} m / {ang_err.max():.1f} deg")

# %%
fig, ax = plt.subplots(1, 3, figsize=(9, 2.4), gridspec_kw={"width_ratios": [1.6, 1.6, 1.3]})
ax[0].imshow(gt[i]); ax[0].set_title(f"frame {i}", fontsize=8)
ax[1].imshow(est.render_view(poses.pose_params(pose.c2w[i:i + 1]), (meta["width"], meta["height"]), 2)[0].permute(1, 2, 0).numpy())
ax[1].set_title("room re-rendered at the estimated pose", fontsize=8)
for a in ax[:2]:
    a.axis("off")
topdown_map(scene, {"true": np.asarray(meta["target"]["c2w"]), "estimated": pose.c2w}, target_id=target.id, ax=ax[2], every=2)
fig.tight_layout()

# %% [markdown]
# ## The judge
# **Walk** (`evaluate.walk_numbers`, thresholds in `evaluate.Judge`, each with its reason there): all six must hold.
# - *starts at the given first frame*: frame 0 looks like the true first view (PSNR >= 20 dB) or is estimated within
#   1 m / 30 degrees of the true start. The model is given that frame; a video of another place does not start there.
# - *moves* (DD): the camera moves at least 0.3 m or turns 20 degrees before the box frames.
# - *no teleport*: no jump over 3 m between consecutive distinct poses (the lite codec shows one picture per 4
#   frames, so its steps are long), measured after a 3-wide median, so one pose the estimator got wrong does not
#   fail a video. Turning is not gated: a camera may turn on the spot.
# - *no backtrack*: the path through the distinct poses is at most 1.5 times the true walk's path. A walk covers
#   its ground once; frames out of order go back and forth over it. The scale is the clip's own walk, not a fixed
#   distance: a short walk's frames are all near each other, and walks differ in pace.
# - *stops*: the box frames hold one view (every box frame's pose within 0.5 m / 30 degrees of their median): the
#   walks the model learns from stop while the box marks the target.
# - *fits the room*: every frame's residual at most 0.10: a frame the room cannot explain has no pose to score; it
#   is a failure, not a forced guess.
#
# **IF** (instruction following: did it go to the instructed object and mark it?) = walk, and the target covers at
# least 1% of the final view at its estimated pose, and the drawn red box has IoU >= 0.3 with the target's box there
# (so a box around the whole image fails). **SD** (spatial distance) $= \lVert p - c_\text{target}\rVert /
# \text{room diagonal}$: $p$ is the point on the ray through the red box's centre at the 25% quantile of the room's
# depth inside the box (the image centre without a box), $c_\text{target}$ the target's 3D centre; median over the
# box frames. A near quantile, not the median: the marked object is in front of what it hides, and a thin lamp
# covers less than half of its box, so the median landed on the wall behind it (`E.GROUND_DEPTH_QUANTILE`). IF
# looks at the box, SD at the 3D point: a box on the target's near edge or on an object just behind it moves SD,
# not IF, as in the paper (IF 0.73 but IF(SD<0.2) 0.65 there). **IF(SD<0.2)**, the headline, and **IF(SD<0.1)**
# combine them. **PSNR / SSIM** against the room re-rendered at each estimated pose say whether the
# frames are views of this room at all; **box IoU** and **DD** are reported too.

# %%
print("SD of a point 1 m from the target centre in this room:", round(E.spatial_distance(target.center + [1, 0, 0], target.center, scene.room), 3))
m = E.score_clip(meta, gt, est, lpips=False)
show = ["IF@0.2", "IF", "SD", "walk", "start_ok", "DD", "no_teleport", "fits_room", "box_IoU", "PSNR"]
print({k: round(float(m[k]), 3) for k in show})
print({k: round(float(m[k]), 3) for k in ("first_psnr", "start_err_m", "jump_m", "residual_max", "target_share")})

# %% [markdown]
# **A model that was never asked to draw a box.** The paper's box ablation trains a model *without* box frames. Its
# videos cannot carry a red box, so asking them for one would score every one of them IF = 0, and "box frames vs
# none" would be a comparison that cannot fail (this course made that mistake once: notebook 09). Such a video is
# judged **unmarked** (`score_clip(..., marked=False)`, `v4s eval --unmarked`; `v4s eval --checkpoint` and
# `v4s tables` read it from the run): IF is the walk and the target prominent in the final view, as the paper's IF
# counts its baselines that draw no box (Wan2.2-5B: IF 0.94), and SD grounds at the final view's centre. The same
# true walk without its box, judged both ways:

# %%
plain = E.ground_truth_video(meta, with_box=False)
for marked in (True, False):
    u = E.score_clip(meta, plain, est, lpips=False, marked=marked)
    print(f"marked={marked}: IF {u['IF']:.0f}, walk {u['walk']:.0f}, target share {u['target_share']:.3f}, "
          f"box IoU {u['box_IoU']:.2f}, SD {u['SD']:.3f}")

# %% [markdown]
# ## Calibration: videos whose verdict we know
# `evaluate.calibration_videos` makes ten videos from one clip, and `evaluate.CALIBRATION` says which must pass the
# headline: the ground truth, the ground truth through the lite codec (what a perfect lite model could output at
# best; its renders are compared through the same codec) pass; a perfect walk to **another object**, the right walk
# with the **box on another object**, the first frame **frozen**, the **final view held still** (the answer, no
# walk), the **scan frame** that shows the target best, boxed and held (copying the context), the frames
# **shuffled**, **noise**, and the right walk with a **box around the image border** all fail. The thresholds
# were chosen on such videos in validation rooms (`tools/calibrate_judge.py`), never on a model's outputs.

# %%
codec = LiteCodec()
videos = E.calibration_videos(meta, codec)
scores = {}
for name, v in videos.items():
    e = est if "codec" not in name else poses.PoseEstimator(scene, meta["K"], meta["width"], meta["height"], degrade=codec)
    scores[name] = E.score_clip(meta, v, e, lpips=False)
print("| video | must pass | IF(SD<0.2) | walk | starts | moves | no teleport | no backtrack | stops | fits room | box IoU | SD |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, s in scores.items():
    print(f"| {name} | {'yes' if E.CALIBRATION[name] else 'no'} | {s['IF@0.2']:.0f} | {s['walk']:.0f} | {s['start_ok']:.0f} | "
          f"{s['DD']:.0f} | {s['no_teleport']:.0f} | {s['no_backtrack']:.0f} | {s['stops']:.0f} | {s['fits_room']:.0f} | "
          f"{s['box_IoU']:.2f} | {s['SD']:.3f} |")
wrong = [n for n, s in scores.items() if s["IF@0.2"] != float(E.CALIBRATION[n])]
print("verdicts that differ from what they must be:", wrong or "none")

# %% [markdown]
# Every video gets its verdict, each for its own reason: the still view and the held scan frame do not start
# where the model was told to start and do not move; the frozen video does not move; noise fits nowhere; the other
# walks and boxes put the box on the wrong thing (box IoU near 0) or around everything. The **shuffled** video is
# the subtle one: this walk has only 4 moving frames, close together, so shuffling them hardly jumps further than
# the codec's true steps and still fits the room (an earlier judge let it pass; no fixed jump limit catches it
# without failing true walks). Measured against the clip's own walk it fails clearly: its path goes back and forth
# (no backtrack) and moving frames land among the box frames (stops). The judge's calibration over validation
# rooms is in `results/judge_2026-12-03.md`.
#
# The walk to another object is also a **floor**: scored on every test room, it says how often a walk to *some*
# object ends with the target in view or near it by chance. Notebook 09 sets the model's videos against it (`v4s
# tables` row "walk to another object (chance)").

# %%
fig, axes = plt.subplots(2, 5, figsize=(12, 3.6))
for ax, (name, s), v in zip(axes.flat, scores.items(), videos.values()):
    ax.imshow(v[-1]); ax.set_title(f"{name}\nIF(SD<0.2) {s['IF@0.2']:.0f}, walk {s['walk']:.0f}", fontsize=9); ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## The command line
# `v4s eval --videos DIR --out OUT` scores any clip folders laid out as the dataset (the scored video is each
# folder's `target.mp4`, so another model's videos are scored by writing them there) and writes `OUT/metrics.json`
# (per clip; means with 95% bootstrap intervals), `OUT/metrics.md` and a diagnostic picture per clip.
# `v4s eval --checkpoint CKPT --data DIR --out OUT` first generates the videos with a trained model (every
# sampling setting of `v4s sample` can be given) and compares them through the model's codec. Two runs on the same
# clips (say, with and without guidance) compare room by room with `--paired-with FIRST_OUT/metrics.json`: the
# second run's metrics.json gets the paired differences (notebook 09 explains why paired). The paper's tables,
# every condition on a whole evaluation set with paired differences, are `v4s tables` (notebook 09).

# %% [markdown]
# ## The trained lite model
# Now the real thing: the course's trained model (`data/v4s-lite/`) generates the walk for the two held-out clips
# shipped with it (rooms it never saw), `v4s eval --checkpoint` scores them, and you judge them yourself. Each
# clip gets two pictures: the context it watched, the video it generated (the red box it drew, outlined in cyan
# where the detector finds it) and the true walk; then its diagnostic picture: the last generated frame, the room
# re-rendered at the estimated pose, and the estimated path against the true one from above.

# %%
# NBVAL_IGNORE_OUTPUT
# reason: sampled through a 20-step solver, whose third digit differs between CPU models (AVX2 vs AVX-512
# kernels); the asserts at the end check what this cell shows.
from v4s_lite.data import read_video
from v4s_lite.plotting import generation_figure, show_video

ckpt = Path(checkpoint) if checkpoint else shipped_model(must_exist=False)
if ckpt is not None and ckpt.exists() and (ckpt / "clips").exists():
    videos_dir, model_codec = E.generate_videos(ckpt, ckpt / "clips", "build/lite_videos")
    result = E.evaluate_videos(videos_dir, "build/lite_eval", progress=False, codec=model_codec)
    print(E.markdown_table({"lite model": result["summary"]}))
    lite = result["summary"]
    assert lite["n"] == 2 and 0 <= lite["SD"]["mean"] <= 1, lite
    assert lite["PSNR"]["mean"] > 17, "the generated walk should agree with the room (ground truth: about 29 dB)"
else:
    print(f"no trained lite model at {ckpt}: skipping this section (restore it with `git checkout -- data/v4s-lite`, "
          "or train one with notebook 05 / `v4s train`)")

# %%
# NBVAL_IGNORE_OUTPUT
# reason: pictures and per-clip numbers of the sampled videos above (they differ slightly between CPU models)
if ckpt is not None and ckpt.exists() and (ckpt / "clips").exists():
    from IPython.display import Image, display

    from v4s_lite.bbox import detect_red_box

    for folder in sorted((ckpt / "clips").iterdir()):
        meta = json.loads((folder / "meta.json").read_text())
        generated = read_video(videos_dir / folder.name / "target.mp4")
        m = result["per_clip"][folder.name]
        print(f"{folder.name}: \"{meta['instruction']}\"  IF(SD<0.2) {m['IF@0.2']:.0f}  walk {m['walk']:.0f}  "
              f"SD {m['SD']:.3f}  box IoU {m['box_IoU']:.2f}  PSNR {m['PSNR']:.1f} dB")
        generation_figure(read_video(folder / "context.mp4"), generated, meta["instruction"],
                          boxes=detect_red_box(generated)[0], truth=read_video(folder / "target.mp4"), n=6)
        plt.show()
        display(Image(filename=f"build/lite_eval/figures/{folder.name}.png"))  # written by evaluate_videos
    show_video(generated, fps=8)  # the last clip, as a video

# %% [markdown]
# Judge before you read the numbers: does the generated walk stay in the same room (colours, walls, furniture in
# the places the context showed)? Does it start where it was told, move through the room, and end facing the object
# the instruction names, with the box around it? The judge asks exactly these questions, in that order; the
# numbers printed above say which one each video fails. On the 200-room test set the shipped model passes them
# all in 14% of the rooms (notebook 09): half its walks fail a walk check (most often they go back and forth), and
# where the walk is sound its box often lands beside the target or on another object. It does use the room: with
# the room's video replaced by noise the target ends up in its final view half as often.
#
# One limit to keep in mind when you read a single video's verdict: the pose search has to explain *blurred*
# generated frames, and several poses explain them about equally well. Move every pixel of a generated video by at
# most one grey level (invisible) and the estimated path changes by about a tenth, enough to flip the verdict of
# about one room in 15 (3 of 48 validation rooms; the same videos judged on a GPU instead of a CPU: 9 of 128:
# `results/cpu_2026-12-06b`). The judge repeats itself exactly on one device, and the flips go both ways, so shares
# over hundreds of rooms stay sound; a single room near a threshold is a coin toss. That is one more reason the
# course compares conditions only on the same rooms, judged on the same device.

# %% [markdown]
# ## Exercise: spatial distance
# Write `my_spatial_distance(point, center, room)`: the distance between the grounded point and the target's
# centre divided by the room's diagonal $\sqrt{W^2 + D^2 + H^2}$. The check compares it with
# `v4s_lite.evaluate.spatial_distance` on the ground-truth answer above.

# %%
def my_spatial_distance(point, center, room):
    raise NotImplementedError  # your code here


# %% jupyter={"source_hidden": true}
def solution_spatial_distance(point, center, room):
    return float(np.linalg.norm(np.subtract(point, center)) / np.sqrt(np.sum(np.square(room))))


# %%
p = target.center + np.array([0.3, -0.2, 0.1])
check_exercise("spatial distance", my_spatial_distance, solution_spatial_distance,
               reference=lambda: E.spatial_distance(p, target.center, scene.room), args=(p, target.center, scene.room))

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# - `v4s_lite.poses.PoseEstimator`: render-and-compare poses (cube-map library, coarse L1 match,
#   Levenberg-Marquardt at 26x16 then 52x32, a Viterbi path that prices teleports, renders through the video's codec
#   with `degrade=`); `poses.codec_aligned`: the poses a 4x time-compressing codec can show.
# - `v4s_lite.evaluate`: the judge. `Judge` (thresholds and why), `walk_numbers` + `apply_judge` (verdicts from
#   stored numbers: change a threshold without re-scoring), `grounded_point` and `spatial_distance` (SD),
#   `score_clip`, `evaluate_videos` / `v4s eval`; the calibration suite `calibration_videos` / `CALIBRATION`
#   (`tests/test_evaluate.py` asserts every verdict; `tools/calibrate_judge.py` runs it over many rooms).
# - `v4s_lite.statistics`: bootstrap intervals, paired differences with a sign test, repeated sampling, tables.
# - LPIPS runs only when the `lpips` package and its AlexNet weights are already on disk (nothing downloads).

# %% [markdown]
# # 08 · Evaluation against the true room: poses, grounding and consistency
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/08_evaluation.ipynb)
#
# The paper scores generated videos through estimated reconstructions and a judge. Our rooms are known exactly,
# so we can do better: find the camera of every generated frame in the true room (render-and-compare), then
# measure grounding (SD, IF) and 3D consistency (PSNR / SSIM against the room re-rendered at that camera) directly.
# Before trusting a metric on a model, we check it on videos whose answer we know: the ground truth, and
# deliberately broken videos.
#
# **You will learn:** render-and-compare pose estimation (a render library + Levenberg-Marquardt); the metrics
# SD, IF, IF(SD<0.2), IF(SD<0.1), box IoU, PSNR, SSIM, DD and their formulas; a calibration table laid out like
# the paper's grounding table; `v4s eval`.
#
# **You need:** a CPU, about a minute and a half in quick mode. **Comes before:** `07_box_supervision` (the red box
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
checkpoint = "../data/v4s-lite"  # the course's trained lite model; its section is skipped when absent

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite import evaluate as E
from v4s_lite.config import QUICK, ClipConfig
from v4s_lite.data import clip_meta
from v4s_lite.exercises import check_exercise
from v4s_lite.plotting import frame_strip, topdown_map
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
# map (6 faces of 32x32); `grid_sample` warps it into a 26x16 view for each of 24 headings x 3 tilts. Six renders
# per position instead of 72.

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
# 26x16, then at 52x32, where neighbouring frames also offer their poses (a video is smooth).
# The **residual** is the final mean absolute pixel difference: how well the room explains the frame.
# The coarse winner is often wrong (tiny images of walls look alike): that is why several candidates are refined
# and the best one kept.

# %%
i = len(gt) // 2
small, w = est._prepare(gt[i:i + 1], est.coarse)
d = (lib - E._blur(small).flatten()).abs().mean(1)
top = torch.topk(-d, 3).indices.numpy()
true = E._pose_params(np.asarray(meta["target"]["c2w"])[i:i + 1])[0]
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
ax[1].imshow(est._render(E._pose_params(pose.c2w[i:i + 1]), (meta["width"], meta["height"]), 2)[0].permute(1, 2, 0).numpy())
ax[1].set_title("room re-rendered at the estimated pose", fontsize=8)
for a in ax[:2]:
    a.axis("off")
topdown_map(scene, {"true": np.asarray(meta["target"]["c2w"]), "estimated": pose.c2w}, target_id=target.id, ax=ax[2], every=2)
fig.tight_layout()

# %% [markdown]
# ## The metrics
# At the estimated pose of each of the final (box) frames:
# - **SD** (spatial distance) $= \lVert p - c_\text{target}\rVert / \text{room diagonal}$, where $p$ is the scene
#   point under the centre of the detected red box (the image centre when there is none; moved to the nearest
#   object pixel inside the box when the centre falls on the wall between a lamp's or a table's parts) and
#   $c_\text{target}$ the target's 3D centre. Median over the box frames.
# - **IF** (instruction following) = 1 when $p$ lies on the target in the instance buffer and the target is
#   visible (majority of the box frames). **IF(SD<0.2)**, **IF(SD<0.1)**: IF and SD under the threshold.
# - **box IoU**: the detected box against the target's box in the instance buffer at the estimated pose.
# - **PSNR** $= 10\log_{10}(1/\text{MSE})$ and **SSIM** (11-px Gaussian window) of every frame against the room
#   re-rendered at its estimated pose: does the video agree with the room's geometry? (Navigation clips also get
#   GT_PSNR / GT_SSIM against the commanded trajectory's true frames.)
# - **DD** (dynamic degree) = 1 when the estimated camera moves at least 0.3 m or turns 20 degrees, so a frozen
#   video cannot score well; **jump** = the largest frame-to-frame camera move.

# %%
print("SD of a point 1 m from the target centre in this room:", round(E.spatial_distance(target.center + [1, 0, 0], target.center, scene.room), 3))
m = E.score_clip(meta, gt, est, lpips=False)
show = ["SD", "IF", "IF@0.2", "IF@0.1", "box_IoU", "PSNR", "SSIM", "DD", "residual", "jump_m", "pose_err_m"]
print({k: round(float(m[k]), 3) for k in show})
print(E.lpips_status()[1])

# %% [markdown]
# ## Calibration: videos whose answer we know
# A metric earns trust by separating good from bad. Next to the ground truth: a perfect walk to **another object**
# (right skills, wrong instruction), the right walk with the **box on the wrong object**, the frames **shuffled**,
# the first frame **frozen**, and **noise**. One estimator (one render library) serves them all.

# %%
other = next(o.id for o in scene.objects if o.id != target.id)
wrong, wrong_id = E.wrong_box_video(meta)
videos = {"GT (rendered walk + box)": gt, f"walk to object {other}": E.approach_video(meta, other),
          f"box on object {wrong_id}": wrong, "shuffled frames": E.corrupt(gt, "shuffle", seed=0),
          "frozen first frame": E.corrupt(gt, "freeze"), "noise": E.corrupt(gt, "noise", seed=0)}
scores = {name: E.score_clip(meta, v, est, lpips=False) for name, v in videos.items()}
for name, s in scores.items():
    print(f"{name:26s}", " ".join(f"{k} {float(s[k]):.3g}" for k in show))

# %%
print(E.markdown_table({name: {k: {"mean": float(s[k])} for k in E.METRIC_KEYS} | {"n": 1} for name, s in scores.items()}))

# %% [markdown]
# Read it like the paper's grounding table (GT: SD 0.074, IF 1.0). The ground truth grounds its target (SD far
# below 0.1, IF 1) and agrees with the room (high PSNR); the walk to another object and the wrong box lose IF;
# the frozen video has DD 0; noise has a low PSNR and a high residual; shuffled frames are each a true view of the
# room (PSNR stays high) but the camera jumps (large jump, large pose error).

# %%
fig, axes = plt.subplots(1, len(scores), figsize=(12, 1.6))
for ax, (name, s), v in zip(axes, scores.items(), videos.values()):
    ax.imshow(v[-1]); ax.set_title(f"{name}\nSD {s['SD']:.2f} IF {s['IF']:.0f}", fontsize=6); ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## The command line
# `v4s eval --videos DIR --out OUT` scores any clip folders laid out as the dataset (the scored video is each
# folder's `target.mp4`, so another model's videos are scored by writing them there) and writes `OUT/metrics.json`
# (per clip; means with 95% bootstrap intervals), `OUT/metrics.md` and a diagnostic picture per clip.
# `v4s eval --checkpoint CKPT --data DIR --out OUT` first generates the videos with a trained model.

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

ckpt = Path(checkpoint)
if ckpt.exists() and (ckpt / "clips").exists():
    videos_dir = E.generate_videos(ckpt, ckpt / "clips", "build/lite_videos")
    result = E.evaluate_videos(videos_dir, "build/lite_eval", progress=False)
    print(E.markdown_table({"lite model": result["summary"]}))
    lite = result["summary"]
    assert lite["n"] == 2 and 0 <= lite["SD"]["mean"] <= 1 and lite["DD"]["mean"] == 1, lite
    assert lite["PSNR"]["mean"] > 17, "the generated walk should agree with the room (ground truth: about 29 dB)"
else:
    print(f"no trained lite model at {ckpt}: skipping this section (restore it with `git checkout -- data/v4s-lite`, "
          "or train one with notebook 05 / `v4s train`)")

# %%
# NBVAL_IGNORE_OUTPUT
# reason: pictures and per-clip numbers of the sampled videos above (they differ slightly between CPU models)
if ckpt.exists() and (ckpt / "clips").exists():
    from IPython.display import Image, display

    from v4s_lite.bbox import detect_red_box

    for folder in sorted((ckpt / "clips").iterdir()):
        meta = json.loads((folder / "meta.json").read_text())
        generated = read_video(videos_dir / folder.name / "target.mp4")
        m = result["per_clip"][folder.name]
        print(f"{folder.name}: \"{meta['instruction']}\"  SD {m['SD']:.3f}  IF {m['IF']:.0f}  PSNR {m['PSNR']:.1f} dB")
        generation_figure(read_video(folder / "context.mp4"), generated, meta["instruction"],
                          boxes=detect_red_box(generated)[0], truth=read_video(folder / "target.mp4"), n=6)
        plt.show()
        display(Image(filename=f"build/lite_eval/figures/{folder.name}.png"))  # written by evaluate_videos
    show_video(generated, fps=8)  # the last clip, as a video

# %% [markdown]
# Judge before you read the numbers: does the generated walk stay in the same room (colours, walls, furniture in
# the places the context showed)? Does it end facing the object the instruction names, with the box around it?
# SD and IF say the same thing as a number; PSNR against the re-render says whether the frames are views of this
# room at all. Here the bookshelf is found (SD 0.03). The black lamp is harder to judge: the model ends facing a
# black lamp with a box around it, as the true walk does, but in front of a wall of the wrong colour, so
# render-and-compare places the camera elsewhere in the room, and the detector reads the box off a stray red line
# beside it (notebook 07 shows both boxes). The scores call it a failure (SD 0.74); your eyes may give it half
# marks. What the model got wrong is the room around the target: the weak context that notebook 09 measures.

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
# - `v4s_lite.evaluate.PoseEstimator`: render-and-compare poses (cube-map library, coarse L1 match,
#   Levenberg-Marquardt at 26x16 then 52x32). **Pose errors on ground truth:** median 0.008 m / 0.18 deg on this
#   notebook's walk; over the 17-frame QUICK walks of scenes 0-5 (`python benchmarks/eval_speed.py --scenes 6`)
#   median 0.12 m / 1.9 deg, 90th percentile 0.51 m / 6.2 deg (a wall seen from 0.2 m further back looks almost
#   the same at 52x32 px: position is the weak direction). Ground truth there scores SD 0.034 and IF 1.00
#   (the paper's GT: SD 0.074, IF 1.0).
# - **Speed:** about 7.5 s per QUICK clip with 2 torch threads on the course's 2-core machine (8 clips per minute,
#   median over 6 clips; bursts of other work on a shared machine make single clips slower). The cube-map library
#   builds 2.8x faster than rendering its views one by one.
# - **Calibration** (the table above): GT SD 0.006 / IF 1; walk to another object IF 0; box on another object
#   IF 0; frozen DD 0; noise PSNR 12 dB against 31 dB; shuffled frames keep a true view at the end here but jump
#   (3.2 m against 1.3 m) and lose the trajectory (pose error 1.1 m against 0.13 m).
# - `score_clip` (SD, IF, IF@0.2, IF@0.1, box IoU, PSNR, SSIM, DD; GT_PSNR / GT_SSIM and pose errors for
#   navigation), `evaluate_videos` / `v4s eval` (metrics.json with bootstrap intervals, metrics.md, figures).
# - Calibration (`ground_truth_video`, `approach_video`, `wrong_box_video`, `corrupt`): the table above;
#   `tests/test_evaluate.py` asserts it.
# - LPIPS runs only when the `lpips` package and its AlexNet weights are already on disk (nothing downloads).

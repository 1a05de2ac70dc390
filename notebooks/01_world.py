# %% [markdown]
# # 01 · The world: rooms, cameras and the videos the model learns from
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/01_world.ipynb)
#
# Video4Spatial learns spatial reasoning from **video alone**: a video that walks through a room (the
# *context*) and an instruction ("find the green plant"); it must generate the camera's walk to the
# target and mark it with a red box. To train and test that on a laptop we need rooms we can film at will,
# with exact answers attached. This notebook builds that world.
#
# **You will learn:** how a procedural room is described (objects made of boxes, cylinders, spheres, cones);
# pinhole cameras (`intrinsics`, `look_at`, `project`); a torch ray caster that returns RGB, depth and an
# instance-id buffer; the context *scan*, the grounding *approach* and command-driven *navigation*
# trajectories; per-frame boxes and visibility; instructions; and which scan frames become the context.
#
# **You need:** a CPU, about a minute. **Comes before:** `00_welcome`. **Next:** `02_latents_tokens`.

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # quick: the QUICK clip preset (65-frame scan); False: LITE (129-frame scan)
device = "auto"   # the ray caster runs on the CPU or a GPU
seed = 0          # the room, its paths and its instruction all follow from this seed
antialias = 2     # 2x2 sub-pixel rays on edges (1 = off)

# %%
import matplotlib.pyplot as plt
import numpy as np

from v4s_lite.camera import intrinsics, look_at, project
from v4s_lite.config import LITE, QUICK
from v4s_lite.exercises import check_exercise
from v4s_lite.language import make_instruction, parse_command
from v4s_lite.plotting import frame_strip, show_video, topdown_map
from v4s_lite.render import boxes_from_instance, render
from v4s_lite.sampling import sample_context_frames
from v4s_lite.scene import make_scene
from v4s_lite.trajectories import approach_trajectory, navigation_trajectory, random_commands, scan_trajectory
from v4s_lite.utils import V4SError, get_device, seed_everything
from v4s_lite.world import make_clip

seed_everything(seed)
plt.rcParams["figure.dpi"] = 100  # readable figures; the strips stay small through their figsize
cfg = QUICK if quick else LITE
dev = get_device(device)
W, H = cfg.width, cfg.height
print(f"clip preset: {W}x{H}, scan {cfg.scan_frames} frames, target {cfg.target_frames} frames "
      f"(last {cfg.box_frames} hold still)")

# %% [markdown]
# ## 1. A room
# `make_scene(seed)` draws a room (width W, depth D, height H in metres; z up, floor at z = 0), a floor and
# wall pattern, and 4 to 10 pieces of furniture. Each object is a few analytic primitives in one palette
# colour. The patterns matter: when the camera moves, the planks and stripes slide past at speeds that
# depend on distance (**parallax**), which is how a video tells depth without a depth sensor.
# Red is not in the palette: red is reserved for the box the model draws around its answer.

# %%
scene = make_scene(seed)
Wr, Dr, Hr = scene.room
print(f"room {Wr:.3g} x {Dr:.3g} x {Hr:.3g} m, floor: {scene.textures['floor']}, walls: {scene.textures['walls']}")
for o in scene.objects:
    kinds = sorted({p.kind for p in o.primitives})
    print(f"  {o.id:2d} {o.name:18s} centre {np.round(o.center, 2).tolist()}  size {np.round(o.size, 2).tolist()}  "
          f"{len(o.primitives)} parts: {', '.join(kinds)}")

# %% [markdown]
# ## 2. Cameras
# A pinhole camera maps a point in camera coordinates (x right, y down, z forward, the OpenCV convention)
# to pixel coordinates
#
# $$u = f\,\frac{x}{z} + c_x, \qquad v = f\,\frac{y}{z} + c_y, \qquad f = \frac{W/2}{\tan(\mathrm{fov}/2)}$$
#
# `intrinsics` builds $K$; a pose `c2w` (camera-to-world, 4x4) places the camera in the room; `look_at`
# builds one from an eye point and a target; `project` maps world points to pixels and depths.

# %%
K = intrinsics(W, H)
print("K =\n", np.round(K, 3))
obj = scene.objects[0]
eye = np.array([Wr / 2, Dr / 2, 1.5])
c2w = look_at(eye, obj.center)
uv, depth = project(obj.center[None], c2w, K)
print(f"looking at object {obj.id} ({obj.name}) from the room centre: its centre lands at pixel "
      f"{np.round(uv[0], 2).tolist()} (image centre {W / 2}, {H / 2}), {depth[0]:.3g} m in front of the camera")

# %% [markdown]
# ## 3. Rendering: RGB, depth and instance ids
# `render` casts one ray per pixel (through the pixel centre) and intersects it analytically with every
# primitive and with the room's walls, floor and ceiling; the nearest hit wins. Besides the picture it
# returns the **depth** of that hit and the **instance id** of what was hit (0 = room, k = object k).
# From the instance buffer come exact 2D boxes, and occlusion is automatically accounted for.
# Two speed tricks: each primitive is only tested against rays inside its projected rectangle, and only
# pixels on edges get the extra 2x2 sub-pixel rays (anti-aliasing).

# %%
out = render(scene, c2w[None], K, W, H, antialias=antialias, device=dev)
fig, axes = plt.subplots(1, 3, figsize=(9, 2))
axes[0].imshow(out.rgb[0]); axes[0].set_title("rgb")
im = axes[1].imshow(out.depth[0], cmap="viridis"); axes[1].set_title("depth (m)"); fig.colorbar(im, ax=axes[1])
axes[2].imshow(out.instance[0], cmap="tab20", interpolation="nearest"); axes[2].set_title("instance id")
for a in axes:
    a.set_axis_off()
plt.show()
ids, counts = np.unique(out.instance[0], return_counts=True)
print(f"depth {out.depth[0].min():.3g} .. {out.depth[0].max():.3g} m; pixels per id:",
      dict(zip(ids.tolist(), counts.tolist())))

# %% [markdown]
# ## 4. The context scan
# The context video walks once around an ellipse about the room centre, looking across the room and
# swinging left and right, so that **every object is seen** at some point (the function checks this by
# rendering). The model will only ever see this video: no map, no depth, no poses.

# %%
scan_c2w = scan_trajectory(scene, cfg.scan_frames, seed)
scan = render(scene, scan_c2w, K, W, H, antialias=antialias, device=dev)
n = len(scene.objects)
scan_boxes, scan_vis = boxes_from_instance(scan.instance, n, scan.coverage)
first_seen = {o.id: int(np.argmax(scan_vis[:, o.id - 1] > 0)) for o in scene.objects}
print(f"scan: {len(scan_c2w)} frames; every object seen: {bool((scan_vis.max(0) > 0).all())}")
print("first frame in which each object appears:", first_seen)

# %% tags=["nbval-ignore-output"]
# NBVAL_IGNORE_OUTPUT
# reason: the embedded mp4 bytes depend on the ffmpeg build
show_video(scan.rgb, fps=cfg.fps)

# %%
frame_strip(scan.rgb, n=8)
plt.show()

# %% [markdown]
# ## 5. The grounding approach
# The target video starts somewhere the scan may not have been, facing anywhere, walks a free path
# (never through furniture), turns until the target is **centred at a comfortable distance**, then holds
# still for the last `box_frames` frames: those are the frames on which the model draws the red box.
# The instruction comes from templates; when two objects share a category the phrase tells them apart
# ("the blue chair next to the white table").
#
# *Where the course differs from the paper:* the paper's clips come from real recordings, where the walk to the
# target plausibly continues the video the context was sampled from, so its first frame resembles context frames.
# Here the walk starts at a view the scan never had: the model must place a new view in the room first. That is
# harder, and the shipped model does not manage it (notebook 09, "Does the model listen?").
# `make_clip(..., start="scan")` (`v4s make-data --start scan`) starts the walk at one of the scan's own views.
# Is the start why the model ignores the room? Measured: no. 10,001 training steps on such walks left the room's
# loss gap where it was (`results/gpu_2026-12-04b`). A second option, `scan="canonical"` (`--scan canonical`),
# starts every scan at the same place on its ring, so a context frame's index says where its camera stands: it
# asks whether the model reads the room once the geometry is given. Measured: no again (`results/gpu_2026-12-04c`,
# notebook 09). A third, `end="scan"` (`--end scan`), ends the walk at the scan's best view of the target, so the
# answer is a view the context video passed through, as when a real recording's target segment is cut from the
# video the context comes from: can the model learn to *find* the answer before it can *synthesise* it? Not yet
# measured.

# %%
rng = np.random.default_rng(seed)
target_id = scene.objects[int(rng.integers(n))].id
instruction = make_instruction(scene, target_id, rng)
tgt_c2w = approach_trajectory(scene, target_id, cfg.target_frames, cfg.box_frames, seed)
tgt = render(scene, tgt_c2w, K, W, H, antialias=antialias, device=dev)
tgt_boxes, tgt_vis = boxes_from_instance(tgt.instance, n, tgt.coverage)
b = tgt_boxes[-1, target_id - 1]
print(f"instruction: {instruction!r} (target id {target_id})")
print(f"target visible fraction over time: {np.round(tgt_vis[:, target_id - 1], 2).tolist()}")
print(f"final box {np.round(b, 1).tolist()}, centre ({(b[0] + b[2]) / 2:.3g}, {(b[1] + b[3]) / 2:.3g}) "
      f"vs image centre ({W / 2}, {H / 2})")

# %% tags=["nbval-ignore-output"]
# NBVAL_IGNORE_OUTPUT
# reason: the embedded mp4 bytes depend on the ffmpeg build
show_video(tgt.rgb, fps=cfg.fps)

# %%
frame_strip(tgt.rgb, n=6, boxes=tgt_boxes[:, target_id - 1])
plt.show()

# %% [markdown]
# From above: the room's footprints (numbered by id; the target has a thick outline), the scan's ellipse
# and the approach, with arrows showing where the camera looks.

# %%
topdown_map(scene, {"scan": scan_c2w, "approach": tgt_c2w}, target_id=target_id)
plt.show()
print("approach start", np.round(tgt_c2w[0, :2, 3], 2).tolist(), "end", np.round(tgt_c2w[-1, :2, 3], 2).tolist())

# %% [markdown]
# ## 6. Navigation by commands
# The second task gives the camera's walk as text: "move forward 1.5 m, then turn left 30 degrees".
# `navigation_trajectory` carries the commands out at constant speed; `random_commands` draws a list whose
# whole path stays in the room and out of the furniture. Malformed commands are refused with a clear error.

# %%
start, commands = random_commands(scene, seed)
nav_c2w = navigation_trajectory(start, commands, cfg.target_frames)
print("commands:", commands)
print("moved", np.round(nav_c2w[-1, :2, 3] - nav_c2w[0, :2, 3], 2).tolist(), "m")
for bad in ("move forward", "fly up 2 m"):
    try:
        parse_command(bad)
    except V4SError as e:
        print("V4SError:", e)

# %%
nav = render(scene, nav_c2w, K, W, H, antialias=antialias, device=dev)
frame_strip(nav.rgb, n=6)
plt.show()

# %% [markdown]
# ## 7. One call: `make_clip`
# The data layer calls `make_clip`, which does all of the above and returns the frames with their
# annotations: poses, boxes and visible fractions for every object in every frame.

# %%
clip = make_clip(scene, "grounding", cfg, seed=seed)
print(f"{clip.task}: {clip.instruction!r}")
for name in ("scan_rgb", "scan_boxes", "scan_visible", "target_rgb", "target_boxes", "target_visible"):
    print(f"  {name:15s} {getattr(clip, name).shape}")

# %% [markdown]
# ## 8. Which scan frames become the context
# The model does not see the whole scan: it sees frame 0 plus `context_chunks` chunks of 4 consecutive
# frames, each starting at a multiple of 4 (one chunk = one latent frame of the Wan VAE). The paper
# spreads the chunks over the whole scan (**non-contiguous**), so the model sees more of the room for the
# same cost; the ablation takes one unbroken run (**contiguous**).

# %%
fig, ax = plt.subplots(figsize=(8, 1.6), layout="constrained")
for row, mode in enumerate(("noncontiguous", "contiguous")):
    idx = sample_context_frames(cfg.scan_frames, cfg.context_chunks, np.random.default_rng(seed), mode=mode)
    ax.scatter(idx, [row] * len(idx), s=8, marker="s")
    seen = {int(i) for f in idx for i in np.unique(scan.instance[f]) if i > 0}
    print(f"{mode:14s} frames {idx}\n{'':14s} objects in view: {len(seen)} of {n}")
ax.set_yticks([0, 1], ["non-contiguous", "contiguous"]); ax.set_xlim(-1, cfg.scan_frames); ax.set_xlabel("scan frame")
plt.show()

# %% [markdown]
# ### Exercise: sample the context yourself
# Write `my_sample_context(n_scan_frames, n_chunks, rng)`, the paper's non-contiguous sampling: return the
# source frame indices of the context, that is scan frame 0, then `n_chunks` chunks of 4 consecutive frames.
# Each chunk must be exactly one latent of the VAE (so it starts at a multiple of 4, at frame 4 or later), fit
# inside the scan, come in time order and at most once; the chunks should be able to land anywhere in the scan
# and should not all sit side by side (that is the contiguous ablation). Draw every random number from `rng`
# (a numpy Generator) so that a seed gives the same context twice.
#
# The checker calls your function with 300 seeds and tells you which rule a draw breaks; it also rejects
# contiguous windows, chunks at arbitrary frames, a range that never reaches the scan's last chunk and chunks
# drawn twice. **While your function is a stub, the checker runs the hidden solution (that is what CI runs).**

# %%
def my_sample_context(n_scan_frames, n_chunks, rng):
    raise NotImplementedError  # your code here: return a list of 1 + 4 * n_chunks frame indices


# %% jupyter={"source_hidden": true}
def solution_sample_context(n_scan_frames, n_chunks, rng):
    slots = np.arange(1, (n_scan_frames - 4) // 4 + 1)  # slot j = frames 4j .. 4j+3
    while True:
        chosen = np.sort(rng.choice(slots, size=n_chunks, replace=False))
        if n_chunks <= 1 or np.any(np.diff(chosen) > 1):  # redraw the rare one-block draw
            return [0] + [int(4 * j + k) for j in chosen for k in range(4)]


# %%
from v4s_lite.exercises import check_context_sampler

check_context_sampler("non-contiguous context sampling", my_sample_context, solution_sample_context,
                      n_scan_frames=cfg.scan_frames, n_chunks=cfg.context_chunks)

# %% [markdown]
# ### Run the ablation and read it
# The paper's contiguous ablation loses a lot (SD 0.3246 vs 0.1099). Here is the first reason you can measure
# without any model: how much of the room each sampling shows. The cell draws 300 contexts of each kind from
# this scan and counts the objects in view in at least one context frame. Before you run the next cell, write
# down what you expect; after it, answer: which sampling shows more, by how much, is the difference bigger than
# the draw-to-draw spread, and would it shrink or grow with a longer scan (the paper's scan is 673 frames)?

# %%
seen_in_frame = scan_vis > 0  # (frames, objects): object visible in that scan frame
draws = {mode: np.array([seen_in_frame[sample_context_frames(cfg.scan_frames, cfg.context_chunks,
                                                             np.random.default_rng(s), mode=mode)].any(0).sum()
                         for s in range(300)])
         for mode in ("noncontiguous", "contiguous")}
for mode, v in draws.items():
    print(f"{mode:14s} objects in view: mean {v.mean():.2f} of {n}, 10th-90th percentile {np.percentile(v, 10):.0f}-"
          f"{np.percentile(v, 90):.0f}, all {n} in {100 * (v == n).mean():.0f}% of draws")
diff = draws["noncontiguous"].mean() - draws["contiguous"].mean()
se = np.sqrt(sum(v.var(ddof=1) / len(v) for v in draws.values()))
print(f"difference {diff:+.2f} objects, 95% interval [{diff - 1.96 * se:+.2f}, {diff + 1.96 * se:+.2f}]")

# %% jupyter={"source_hidden": true}
# One reading (open after writing yours): computed from the numbers above, so it follows the room and the seed.
spread = np.percentile(draws["contiguous"], 90) - np.percentile(draws["contiguous"], 10)
print(f"Non-contiguous sampling shows {diff:+.2f} objects on average "
      + ("(the interval excludes 0: a real difference for this room). " if diff - 1.96 * se > 0
         else "(the interval includes 0: no clear difference for this room). ")
      + f"A single contiguous draw varies by about {spread:.0f} objects between its 10th and 90th percentile: where "
      "the window falls decides what the model can know. With the same number of chunks, a longer scan makes the "
      "contiguous window a smaller share of the walk, so the gap grows. This counts objects only; the model also "
      "needs views of the target from the right side, which notebook 08 measures on generated videos.")

# %% [markdown]
# ## 9. Exercise: project a box
# Write the pinhole projection yourself: world points (N, 3), a camera-to-world pose and K to pixel
# coordinates (N, 2). Hint: invert the pose to get world-to-camera, then apply the formula above.
# The check compares your answer with `v4s_lite.camera.project` on the 8 corners of the target's 3D box.

# %%
def my_project(points, c2w, K):
    raise NotImplementedError  # your code here: return uv, shape (N, 2)


# %% jupyter={"source_hidden": true}
def solution_project(points, c2w, K):
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    return cam[:, :2] / cam[:, 2:] * np.diag(K)[:2] + K[:2, 2]


# %%
target = scene.object(target_id)
corners = target.corners()
check_exercise("project corners", my_project, solution_project,
               reference=lambda: project(corners, tgt_c2w[-1], K)[0], args=(corners, tgt_c2w[-1], K))

# %% [markdown]
# The projected corners bound the object; the instance-buffer box is tighter (it hugs the pixels that are
# really the object and drops the occluded ones). Both are drawn below.

# %%
uv = project(corners, tgt_c2w[-1], K)[0]
proj_box = np.array([*uv.min(0), *uv.max(0)])
print("projected 3D box", np.round(proj_box, 1).tolist(), "\ninstance box     ", np.round(tgt_boxes[-1, target_id - 1], 1).tolist())
frame_strip(tgt.rgb[-1:], indices=[0], boxes=np.stack([proj_box, tgt_boxes[-1, target_id - 1]])[None],
            labels=["3D corners", "instance"], box_color="yellow", scale=3)
plt.show()

# %% [markdown]
# ## 10. Explore (optional, interactive)
# A slider over the scan frames: move it and the frame appears under it. It needs a running kernel (run the
# notebook first); without one, the static strips above show the same frames.

# %% tags=["nbval-ignore-output"]
# NBVAL_IGNORE_OUTPUT
# reason: widget model ids change on every run
try:
    import ipywidgets as widgets

    # A slider and an empty output area: a frame is drawn when you move the slider. (Not `interact`, which
    # draws while the cell executes and can deadlock headless runs: nbclient issue 312.)
    frame_slider = widgets.IntSlider(0, 0, len(scan.rgb) - 1, description="frame", continuous_update=False)
    frame_out = widgets.Output()

    def _show(change):
        with frame_out:
            frame_out.clear_output(wait=True)
            frame_strip(scan.rgb, indices=[change["new"]], boxes=scan_boxes, scale=3)
            plt.show()

    frame_slider.observe(_show, names="value")
    display(widgets.VBox([frame_slider, frame_out]))
except ImportError:
    print("ipywidgets is not installed: see the frame strips above")

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# - Rooms, objects and their JSON recipe: `v4s_lite.scene.make_scene`, `Scene.to_dict` / `Scene.from_dict`.
# - Cameras: `camera.intrinsics`, `camera.look_at`, `camera.project`.
# - The ray caster with depth and instance ids: `v4s_lite.render.render`; boxes and visibility:
#   `render.boxes_from_instance`.
# - Trajectories: `trajectories.scan_trajectory` (context), `trajectories.approach_trajectory` (grounding),
#   `trajectories.navigation_trajectory` + `language.parse_command` (navigation); instructions: `language.make_instruction`.
# - A whole annotated example: `world.make_clip`; context frames: `v4s_lite.sampling.sample_context_frames`.
# - Figures: `v4s_lite.plotting` (`show_video`, `frame_strip`, `topdown_map`).
#
# Next, `02_latents_tokens` turns these frames into the latents and tokens the transformer sees.

# %% [markdown]
# # 00 · Welcome to v4s-lite
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/00_welcome.ipynb)
#
# **Video4Spatial** (Xiao et al., 2025, arXiv 2512.03040) asks a video diffusion model to *reason about space*
# using nothing but a video: it watches a walk through a room, reads an instruction such as
# *"find the green plant"*, and generates the camera's walk to the target, consistent with the room's 3D
# layout, ending with a red box drawn around the object. No depth, no camera poses, no 3D model: only video.
#
# This course builds the method up one idea per notebook, on a synthetic world where every answer is known
# exactly, and ends with LoRA fine-tuning of the real Wan2.2-TI2V-5B on a GPU.
#
# **What you need:** a CPU is enough for notebooks 00-09 in quick mode (about a minute each);
# notebook 10 wants a GPU for its full run. **Comes before:** nothing, start here.

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # quick mode: small sizes, a few CPU minutes for the whole course
device = "auto"   # "auto" picks a CUDA GPU when there is one
seed = 0

# %% [markdown]
# ## Your environment
# The versions and hardware below differ from machine to machine, so this cell's output is not checked.
# If `cuda` says `False` on Colab, switch the runtime on: *Runtime > Change runtime type > GPU*.

# %%
# NBVAL_IGNORE_OUTPUT
# reason: versions and hardware differ between machines
import platform

import diffusers, peft, torch

import v4s_lite
from v4s_lite.utils import get_device

print(f"python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
      f"peft {peft.__version__}, v4s_lite {v4s_lite.__version__}")
print(f"cuda: {torch.cuda.is_available()}, device used: {get_device(device)}, CPU threads: {torch.get_num_threads()}")

# %% [markdown]
# ## The course map
#
# | # | notebook | what it teaches | CPU (quick) | GPU |
# |---|---|---|---|---|
# | 00 | welcome | the task, the map, the clip shapes | < 1 min | no |
# | 01 | the spatial world | procedural rooms, cameras, ray casting, boxes, context chunks | ~1 min | no |
# | 02 | latents and tokens | what the VAE compresses; why long context is expensive | ~1 min | no |
# | 03 | RoPE offsets | 3D RoPE; non-contiguous positions; relative-position invariance | ~1 min | no |
# | 04 | context conditioning | one sequence: clean context, clean first frame, noisy target | ~1 min | no |
# | 05 | training | flow matching; a small model trained live | ~2 min | no |
# | 06 | joint CFG | guidance over instruction *and* context | ~1 min | no |
# | 07 | box supervision | auxiliary red-box frames and their detector | ~1 min | no |
# | 08 | evaluation | render-and-compare camera poses; SD / IF metrics | ~2 min | no |
# | 09 | reproducing the paper | the paper's tables at lite scale | ~1 min | to rebuild |
# | 10 | full Wan2.2 | LoRA fine-tuning of Wan2.2-TI2V-5B | tiny stand-in | yes |
#
# ## Running the course
# * **Notebook by notebook**: open them in order in JupyterLab (`make lab` in a clone) or Colab (the badge at
#   the top of each; its first cell installs the course). Every notebook has a `parameters`
#   cell; `quick=True` (the default) keeps it to CPU minutes, `quick=False` does the real thing.
# * **All at once**, as an instructor before class: `v4s course` runs every notebook through
#   [papermill](https://papermill.readthedocs.io) in quick mode and writes executed copies to
#   `build/notebooks/`; `v4s course --full` runs the real sizes; `v4s course --only 03 05` a few.

# %% [markdown]
# ## The shapes of a clip
# Wan2.2's VAE compresses time 4x *causally*: the first frame is encoded alone and every following group
# of 4 frames becomes one latent frame. That is why every frame count in the paper has the form `1 + 4k`:
# the context is 337 = 1 + 84x4 frames at inference (169 = 1 + 42x4 in training) and the generated clip
# 181 = 1 + 45x4 = 161 frames of walking plus 20 frames that hold still and draw the red box.
# Each of the two videos has its own `+1`, on purpose: the context's is scan frame 0, the target's is its clean
# first frame (where the walk starts, given to the model). So a sequence holds two latents of a single frame.
# The course's presets keep that structure at smaller sizes:

# %%
from v4s_lite.config import PRESETS

print(f"{'preset':<12}{'size':>9}{'context':>9}{'target':>8}{'box':>5}{'latents':>9}")
for name, c in PRESETS.items():
    print(f"{name:<12}{c.width:>5}x{c.height:<4}{c.context_frames:>8}{c.target_frames:>8}{c.box_frames:>5}"
          f"{c.context_latents:>5} + {c.target_latents}")

# %% [markdown]
# ## Exercise: how many tokens does the paper's training clip cost?
# The transformer sees one token per 2x2 patch of a latent frame, and Wan2.2's VAE shrinks each side 16x,
# so one token covers 32x32 pixels. Write `tokens(cfg)`: the number of tokens for all latent frames
# (context and target) of a `ClipConfig`. For the paper's training shapes (416x256, 169 context frames, 181
# generated) this comes to 9,256: our count from the shapes the paper gives, not a number the paper prints.

# %%
def tokens(cfg, pixels_per_token=32):
    raise NotImplementedError  # your code here: latent frames x tokens per latent frame

# %% jupyter={"source_hidden": true}
# Solution (hidden: expand it only after trying).
def solution_tokens(cfg, pixels_per_token=32):
    per_frame = (cfg.width // pixels_per_token) * (cfg.height // pixels_per_token)
    return (cfg.context_latents + cfg.target_latents) * per_frame

# %%
from v4s_lite.config import PAPER_TRAIN
from v4s_lite.exercises import check_exercise

check_exercise("tokens of the paper's training clip", tokens, solution_tokens, reference=9256, args=(PAPER_TRAIN,))

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# * The task: context video + instruction -> a generated walk to the target, ending in a red box.
# * Clip shapes are `1 + 4k` frames because of the VAE's causal 4x time compression:
#   `v4s_lite/config.py` (`ClipConfig`, presets `QUICK`, `LITE`, `PAPER`, `PAPER_TRAIN`).
# * Running the course: `v4s course` (`v4s_lite/course.py`). Next: **01 · the spatial world**.

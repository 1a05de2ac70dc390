# %% [markdown]
# # 02 · Latents and tokens
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/02_latents_tokens.ipynb)
#
# A video diffusion model never sees pixels: a VAE first squeezes the video into a small grid of *latents*,
# and the transformer cuts that grid into *tokens*. Video4Spatial puts the whole context video into the
# same token sequence as the video it generates, so the token count decides what the method costs.
#
# **You will learn:** what Wan2.2's VAE compresses (4x in time, causally; 16x16 in space; 48 channels);
# the course's lite codec that keeps the same structure on a CPU; how many tokens a clip costs
# (the paper's 9,256); why a long context is expensive (attention grows with the square of the tokens).
#
# **You need:** a CPU, about a minute. **Comes before:** `01_world` (the rooms and cameras rendered here).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # quick mode: a short clip
device = "auto"   # everything here runs on the CPU in a second; kept for the course's uniform interface
seed = 0
n_frames = 17 if quick else 33   # 1 + 4k frames: the VAE's causal grain

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite.budget import latent_tokens, transformer_flops
from v4s_lite.camera import intrinsics
from v4s_lite.codec import LiteCodec, WanVAECodec, dct_basis, frames_to_video, video_to_frames
from v4s_lite.config import LITE, PAPER, PAPER_TRAIN, QUICK
from v4s_lite.model import transformer_config
from v4s_lite.render import render
from v4s_lite.scene import make_scene
from v4s_lite.trajectories import scan_trajectory
from v4s_lite.utils import seed_everything

seed_everything(seed)
torch.set_num_threads(1)  # same float results on every machine

# %% [markdown]
# ## A clip to compress
# The first frames of a scan of a procedural room (notebook 01), rendered at the course's 104x64: the
# paper's 416x256 aspect ratio at a quarter of each side.

# %%
scene = make_scene(seed)
W, H = QUICK.width, QUICK.height
scan_c2w = scan_trajectory(scene, QUICK.scan_frames, seed)[:n_frames]  # the quick clips' scan, its first frames
frames = render(scene, scan_c2w, intrinsics(W, H), W, H).rgb  # uint8 (F, H, W, 3)
video = frames_to_video(frames)  # float (1, 3, F, H, W) in [-1, 1]: what codecs take
print("frames", tuple(frames.shape), "-> video tensor", tuple(video.shape))

# %% [markdown]
# ## Wan2.2's VAE: 4x time (causal), 16x16 space, 48 channels
# The VAE encodes the **first frame alone**, then every group of 4 frames into one latent frame: a clip of
# `1 + 4k` frames becomes `1 + k` latent frames. That causal grain is why every frame count in the paper
# is `1 + 4k` and why context chunks are 4 frames long. Space shrinks 16x on each side; each latent
# position holds 48 numbers. The real VAE is a 1.4 GB download; here a tiny one with the same shape
# family (random weights) shows the shapes, through the same `WanVAECodec` the full model uses.

# %%
from diffusers import AutoencoderKLWan

torch.manual_seed(seed)
tiny_vae = AutoencoderKLWan(base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1, is_residual=True,
                            in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
                            scale_factor_temporal=4, temperal_downsample=[False, True, True])
wan = WanVAECodec(tiny_vae)
paper_video = torch.zeros(1, 3, 17, 256, 416)  # 416x256 like the paper; 17 frames to stay quick
print("Wan2.2 VAE: ", tuple(paper_video.shape), "->", (1, *wan.latent_shape(17, 256, 416)))
print(f"numbers per latent number: {4 * 16 * 16 * 3 / 48:.0f}x")

# %% [markdown]
# ## The lite codec: same structure, no learning
# A CPU course cannot run the 5B model's VAE, so the lite model uses a *fixed, linear* stand-in with the
# same grain: frame 0 alone, then the **mean of every 4 frames** (time), and on each 4x4 pixel block the
# lowest 2x2 cosines of a block DCT (space, as in JPEG): 3 colours x 4 cosines = 12 channels.
# With the transformer's 1x2x2 patch one token covers 8x8 lite pixels, so a 104x64 frame is 13 x 8 = 104
# tokens: exactly the token grid of a 416x256 frame through Wan's VAE (32x32 pixels per token).
# It is a teaching stand-in: it cannot invent detail the way a learned decoder does.

# %%
codec = LiteCodec()
latents = codec.encode(video)
recon = codec.decode(latents)
print("lite codec:", tuple(video.shape), "->", tuple(latents.shape), f"({codec.compression:.0f}x fewer numbers)")


def psnr(a, b):
    return 10 * math.log10(4.0 / float(((a - b) ** 2).mean()))  # values in [-1, 1]: peak-to-peak 2


print(f"reconstruction PSNR {psnr(recon, video):.3g} dB")
still = video[:, :, :1].expand_as(video)  # the camera held still: only the spatial part loses anything
print(f"same, camera held still: {psnr(codec.decode(codec.encode(still)), still):.3g} dB")
per_latent = [psnr(recon[:, :, sl], video[:, :, sl]) for sl in [slice(0, 1)] +
              [slice(1 + 4 * j, 5 + 4 * j) for j in range(latents.shape[2] - 1)]]
print("PSNR per latent frame:", [f"{p:.3g}" for p in per_latent])

# %% [markdown]
# Latent 0 is the first frame alone and is reconstructed best; the others average 4 frames of a moving
# camera, so they blur with the motion (a learned VAE keeps frames sharp: that is what its 48 channels
# and its decoder are for). Below: the 4 cosines a latent keeps per colour, and the frames before and
# after the round trip.

# %%
d = dct_basis(4)[:2]
fig, axes = plt.subplots(1, 4, figsize=(5, 1.6), dpi=100)
for ax, (u, v) in zip(axes, [(0, 0), (0, 1), (1, 0), (1, 1)]):
    ax.imshow(torch.outer(d[u], d[v]), cmap="gray", vmin=-0.5, vmax=0.5)
    ax.set_title(f"cos ({u},{v})", fontsize=9), ax.axis("off")
plt.show()

show = [0, n_frames // 2, n_frames - 1]
rec_frames = video_to_frames(recon)[0]
fig, axes = plt.subplots(2, len(show), figsize=(2.4 * len(show), 3.4), dpi=100)
for i, f in enumerate(show):
    axes[0, i].imshow(frames[f]), axes[0, i].set_title(f"frame {f}", fontsize=10)
    axes[1, i].imshow(rec_frames[f]), axes[1, i].set_title(f"decoded {f}", fontsize=10)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout(), plt.show()
print("mean abs pixel error per shown frame:",
      [f"{np.abs(frames[f].astype(int) - rec_frames[f].astype(int)).mean():.3g}" for f in show])

# %% [markdown]
# ## How many tokens a clip costs
# tokens = latent frames x (latent height / 2) x (latent width / 2). The paper trains on 169 context frames
# and 181 target frames at 416x256: 43 + 46 latent frames of 8 x 13 tokens.

# %%
wan_cfg = transformer_config("wan2.2-ti2v-5b")
rows = [("paper train", PAPER_TRAIN, 16), ("paper inference", PAPER, 16), ("lite", LITE, 4), ("quick", QUICK, 4)]
print(f"{'clip':<16}{'size':>9}{'latents':>9}{'tokens':>8}")
for name, cfg, s in rows:
    n_lat = cfg.context_latents + cfg.target_latents
    tokens = latent_tokens(wan_cfg, cfg.width, cfg.height, n_lat, spatial_factor=s)
    print(f"{name:<16}{cfg.width:>5}x{cfg.height:<3}{cfg.context_latents:>4}+{cfg.target_latents:<4}{tokens:>8,}")

# %% [markdown]
# ## Why a long context is expensive
# Every token attends to every other token, so self-attention costs `4 N^2 d` FLOPs per layer for N tokens
# of width d, while the projections and FFN grow only linearly in N. The generated clip stays 46 latent
# frames; adding context frames adds tokens, and the attention share grows until it dominates. This is
# the paper's stated limitation ("low resolution for lack of context compression").

# %%
ctx_frames = np.array([1 + 4 * k for k in range(0, 85, 4)])
target_latents = PAPER.target_latents
tokens = np.array([latent_tokens(wan_cfg, 416, 256, 1 + (f - 1) // 4 + target_latents) for f in ctx_frames])
d_model = wan_cfg["num_attention_heads"] * wan_cfg["attention_head_dim"]
attn = 4.0 * tokens.astype(float) ** 2 * d_model * wan_cfg["num_layers"]
total = np.array([transformer_flops(wan_cfg, int(n)) for n in tokens])

fig, ax = plt.subplots(1, 2, figsize=(9, 3), dpi=100)
ax[0].plot(ctx_frames, tokens, "o-", ms=3), ax[0].set_xlabel("context frames"), ax[0].set_ylabel("tokens")
ax[1].plot(ctx_frames, total / 1e12, label="whole forward"), ax[1].plot(ctx_frames, attn / 1e12, label="self-attention")
ax[1].set_xlabel("context frames"), ax[1].set_ylabel("TFLOPs per forward"), ax[1].legend(fontsize=9)
plt.tight_layout(), plt.show()
for f, n, a, t in zip(ctx_frames[::5], tokens[::5], attn[::5], total[::5]):
    print(f"context {f:>3} frames: {n:>6,} tokens, {t / 1e12:.3g} TFLOPs per forward, attention {a / t:.0%}")

# %% [markdown]
# ## Exercise: count the tokens of a clip
# Write `clip_tokens(width, height, context_frames, target_frames)` for Wan2.2-TI2V-5B: the VAE turns
# `1 + 4k` frames into `1 + k` latent frames and each side shrinks 16x; the transformer's patch is 1x2x2.
# The check compares it with the package for the paper's training clip (it should say 9,256).

# %%
def clip_tokens(width, height, context_frames, target_frames):
    raise NotImplementedError  # your code here


# %% jupyter={"source_hidden": true}
def solution(width, height, context_frames, target_frames):
    latent_frames = (1 + (context_frames - 1) // 4) + (1 + (target_frames - 1) // 4)
    return latent_frames * (height // 16 // 2) * (width // 16 // 2)


# %%
from v4s_lite.exercises import check_exercise

args = (416, 256, PAPER_TRAIN.context_frames, PAPER_TRAIN.target_frames)
reference = lambda: latent_tokens(wan_cfg, 416, 256, PAPER_TRAIN.context_latents + PAPER_TRAIN.target_latents)
ok = check_exercise("clip tokens", clip_tokens, solution, reference, args=args)
print("paper training clip:", solution(*args), "tokens")

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# * A video becomes `1 + k` latent frames (causal 4x time) of `h x w` positions; tokens are 2x2 patches of them.
#   `v4s_lite.codec`: `LatentCodec` (`encode`, `decode`, `latent_shape`), `LiteCodec` (the CPU stand-in),
#   `WanVAECodec` (Wan2.2's VAE, normalised as WanPipeline does), `frames_to_video` / `video_to_frames`.
# * The paper's training clip is 9,256 tokens; lite frames keep the same 104 tokens per latent frame.
# * Attention cost grows with the square of the token count, so context length is the expensive knob:
#   `v4s_lite.budget.transformer_flops`, `latent_tokens`. Next: `03_rope`, how the model knows *when* each
#   context chunk was filmed.

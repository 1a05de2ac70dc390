# %% [markdown]
# # 04 · Context conditioning: one sequence along time
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/04_context_conditioning.ipynb)
#
# Video4Spatial adds no new module to the video model. The context video is simply put **in front of** the
# video to generate, along time, and everything runs through the one transformer:
#
# `[ clean context latents | clean first target latent ("+1") | noisy target latents ]`
#
# The context is a condition only because its tokens are clean (timestep 0) and the loss ignores them.
#
# **You will learn:** how the sequence is built from a clip; per-token timesteps (0 for the clean tokens,
# t for the noisy ones, Wan2.2 TI2V's mechanism); which tokens the loss covers; a forward pass of the
# lite model drawn as its token layout.
#
# **You need:** a CPU, about a minute. **Comes before:** `03_rope` (the temporal positions used here).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # quick: the QUICK clip (5 context + 5 target latents); full: the LITE clip
device = "auto"   # "auto" picks a CUDA GPU when there is one
seed = 0
preset = "lite"   # transformer preset: "tiny", "lite" (random weights here: training is notebook 05)
sigma = 0.7       # noise level of the target in this example (0 = clean, 1 = pure noise)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite.camera import intrinsics
from v4s_lite.codec import LiteCodec, LiteTextEncoder, frames_to_video, video_to_frames
from v4s_lite.config import LITE, QUICK
from v4s_lite.flow import add_noise, flow_target
from v4s_lite.language import make_instruction
from v4s_lite.model import TokenLayout, V4SModel
from v4s_lite.render import render
from v4s_lite.rope import context_positions
from v4s_lite.sampling import sample_context_frames
from v4s_lite.scene import make_scene
from v4s_lite.trajectories import approach_trajectory, scan_trajectory
from v4s_lite.utils import get_device, seed_everything

gen = seed_everything(seed)
torch.set_num_threads(1)  # same float results on every machine
dev = get_device(device)
clip = QUICK if quick else LITE

# %% [markdown]
# ## A clip: a scan, an instruction, the walk to the target
# The context is frame 0 of the scan plus `context_chunks` chunks of 4 frames sampled from it (notebook 01);
# the target is the walk to the named object, whose first frame is given clean (the paper's "+1").

# %%
scene = make_scene(seed)
K = intrinsics(clip.width, clip.height)
rng = np.random.default_rng(seed)
target_id = int(scene.objects[0].id)
instruction = make_instruction(scene, target_id, rng)
scan = render(scene, scan_trajectory(scene, clip.scan_frames, seed), K, clip.width, clip.height).rgb
frame_indices = sample_context_frames(clip.scan_frames, clip.context_chunks, rng)
walk = approach_trajectory(scene, target_id, clip.target_frames, clip.box_frames, seed)
target = render(scene, walk, K, clip.width, clip.height).rgb
print(f"instruction: {instruction!r}")
print(f"context: {len(frame_indices)} of {len(scan)} scan frames, chunks start at {frame_indices[1::4]}")
print(f"target: {len(target)} frames")

# %% [markdown]
# ## From frames to latents
# The codec (notebook 02) turns `1 + 4k` frames into `1 + k` latent frames. The target's latent 0 is its
# clean first frame; the rest get noise. Flow matching mixes clean latents `x0` and Gaussian noise `e`:
# `x_sigma = (1 - sigma) x0 + sigma e`, and the model learns the velocity `e - x0`.

# %%
codec, text_encoder = LiteCodec(), LiteTextEncoder()
with torch.no_grad():
    context_latents = codec.encode(frames_to_video(scan[frame_indices]))
    target_latents = codec.encode(frames_to_video(target))
first_latent, x0 = target_latents[:, :, :1], target_latents[:, :, 1:]
noise = torch.randn(x0.shape, generator=gen)
noisy_latents = add_noise(x0, noise, torch.tensor([sigma]))
velocity = flow_target(x0, noise)
text_emb = text_encoder.encode([instruction])
ctx_pos = context_positions(frame_indices)
for name, z in (("context", context_latents), ("first", first_latent), ("noisy", noisy_latents)):
    print(f"{name:>8} latents {tuple(z.shape)}")
print("text embedding", tuple(text_emb.shape), "| context RoPE positions", ctx_pos)

# %% [markdown]
# ## The token layout
# After the transformer's 1x2x2 patch each latent frame is 8 x 13 = 104 tokens. `V4SModel.layout` says
# what each frame is, which timestep its tokens carry and which tokens the loss covers; `positions`
# gives the temporal RoPE position of each frame (the target continues after the context).

# %%
model = V4SModel.from_preset(preset).to(dev).eval()
h, w = context_latents.shape[-2:]
layout = model.layout(context_latents.shape[2], noisy_latents.shape[2], h, w)
positions = model.positions(ctx_pos, noisy_latents.shape[2]).tolist()
t = sigma * 1000  # diffusers' Wan timesteps are sigma x 1000
ts = layout.timesteps(torch.tensor([t]))[0]
print(f"{layout.n_frames} latent frames x {layout.tokens_per_frame} tokens = {layout.n_tokens} tokens; "
      f"loss on {int(layout.loss_mask.sum())} of them")
print(f"{'frame':>5} {'role':>8} {'RoPE t':>7} {'timestep':>9}")
for f, (role, p) in enumerate(zip(layout.frame_roles, positions)):
    print(f"{f:>5} {role:>8} {p:>7} {float(ts[f * layout.tokens_per_frame]):>9.3g}")

# %% [markdown]
# ## A forward pass
# One call builds the sequence, sets the per-token timesteps and the RoPE positions, runs the unmodified
# diffusers `WanTransformer3DModel`, and returns the prediction for the noisy latents only: exactly the
# tokens of the loss mask. (The model is untrained here; notebook 05 trains it.)

# %%
with torch.no_grad():
    pred = model(context_latents.to(dev), first_latent.to(dev), noisy_latents.to(dev), t, text_emb.to(dev),
                 context_positions=ctx_pos).cpu()
    pred_noise_ctx = model(torch.randn(context_latents.shape, generator=gen).to(dev), first_latent.to(dev),
                           noisy_latents.to(dev), t, text_emb.to(dev), context_positions=ctx_pos).cpu()
loss = torch.nn.functional.mse_loss(pred, velocity)
print("prediction", tuple(pred.shape), "= noisy latents", tuple(noisy_latents.shape))
print(f"flow-matching loss (untrained model) {loss.item():.3g}")
print(f"relative change of the prediction when the context is replaced by noise: "
      f"{float((pred - pred_noise_ctx).norm() / pred.norm()):.3g}")

# %% [markdown]
# The last number is not zero: the noisy tokens attend to the clean context tokens, so the context changes
# the prediction even though no context token is ever predicted. Below, the whole sequence as the
# transformer sees it: one column per latent frame (a decoded thumbnail above), its 104 tokens below,
# coloured by role, with its RoPE position and timestep.

# %%
with torch.no_grad():
    thumbs = video_to_frames(codec.decode(torch.cat([context_latents, first_latent, noisy_latents], dim=2)))[0]
starts = [0] + [1 + 4 * j for j in range(layout.n_frames - 1)]  # first decoded frame of every latent
colors = {"context": (0.12, 0.47, 0.71), "first": (0.17, 0.63, 0.17), "noisy": (1.0, 0.5, 0.05)}
grid = np.array([[colors[r] for r in layout.frame_roles]] * layout.tokens_per_frame)  # (tokens, frames, 3)
grid = grid * (0.75 + 0.25 * (np.arange(layout.tokens_per_frame)[:, None, None] % 13 == 0))

fig, axes = plt.subplots(2, layout.n_frames, figsize=(1.15 * layout.n_frames, 3.6), dpi=100,
                         gridspec_kw={"height_ratios": [1, 3]})
for f in range(layout.n_frames):
    axes[0, f].imshow(thumbs[starts[f]])
    axes[0, f].set_title(f"{layout.frame_roles[f]}\npos {positions[f]}", fontsize=9)
    axes[1, f].imshow(grid[:, f:f + 1], aspect="auto")
    axes[1, f].set_xlabel(f"t={float(ts[f * layout.tokens_per_frame]):.0f}", fontsize=9)
    for ax in axes[:, f]:
        ax.set_xticks([]), ax.set_yticks([])
axes[1, 0].set_ylabel(f"{layout.tokens_per_frame} tokens / frame", fontsize=9)
fig.suptitle(f"{layout.n_tokens} tokens; loss on the orange ones", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Exercise: per-token timesteps
# Write the timestep of every token of the sequence for a diffusion time `t`: 0 for the `n_context`
# context frames and the clean first frame, `t` for the `n_noisy` noisy frames, each frame repeated
# `tokens_per_frame` times. The check compares with `TokenLayout.timesteps`.

# %%
def token_timesteps(n_context, n_noisy, tokens_per_frame, t):
    raise NotImplementedError  # your code here


# %% jupyter={"source_hidden": true}
def solution(n_context, n_noisy, tokens_per_frame, t):
    per_frame = [0.0] * (n_context + 1) + [float(t)] * n_noisy
    return torch.tensor(per_frame).repeat_interleave(tokens_per_frame)


# %%
from v4s_lite.exercises import check_exercise

args = (layout.n_context, layout.n_noisy, layout.tokens_per_frame, t)
ok = check_exercise("per-token timesteps", token_timesteps, solution,
                    reference=lambda: TokenLayout(*args[:3]).timesteps(torch.tensor([t]))[0], args=args)

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# * The sequence along time `[context | first | noisy]`, per-token timesteps (0 = clean) and the loss mask:
#   `v4s_lite.model.V4SModel` (`forward`, `layout`, `positions`), `TokenLayout` (`frame_roles`, `timesteps`,
#   `loss_mask`). The transformer itself is diffusers' `WanTransformer3DModel`, unchanged but for its `rope`.
# * The same code runs the lite model and Wan2.2-TI2V-5B: `transformer_config("lite" | "wan2.2-ti2v-5b")`.
# * Next: `05_training` trains this model with flow matching, and `06` guides it with the context (joint CFG,
#   `v4s_lite.cfg`).

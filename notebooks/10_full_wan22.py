# %% [markdown]
# # 10 · The real model: Video4Spatial on Wan2.2-TI2V-5B
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/10_full_wan22.ipynb)
#
# Everything so far ran on the lite model. This last notebook takes the same code to the model the paper
# fine-tunes: **Wan2.2-TI2V-5B** (30 blocks, width 3072, 5.0 B parameters), with LoRA, at the paper's setting
# (416x256, 337 context frames, 161 + 20 generated frames).
#
# **You will learn:** what a 5B training step needs in memory and which knob moves it (what fits where);
# why the UMT5 embeddings and VAE latents are cached to disk before the transformer is loaded; how the
# adapter is exported so diffusers' own `WanPipeline.load_lora_weights` loads it; what made our training and
# denoising steps faster than stock diffusers on an H100 (compilation, selective checkpointing, context reuse).
#
# **You need:** quick mode: a CPU, about a minute: the same cells run on a tiny Wan2.2-shaped pipeline built
# offline. Full mode: a GPU with >= 24 GB (Colab L4/A100) and internet to download the weights (~35 GB).
# **Comes before:** `05` (training), `06` (joint guidance).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True          # quick: tiny Wan2.2-shaped pipeline on CPU; full: Wan2.2-TI2V-5B (GPU, downloads weights)
device = "auto"       # "auto" picks a CUDA GPU when there is one
seed = 0
source = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"  # full mode: the Hub id, or a local folder with the pipeline layout
train_steps = 4       # LoRA steps in this notebook (the real run: `v4s wan-train configs/wan22_ti2v_5b.yaml`)
out_dir = "runs/nb10" # full mode on Colab: a mounted Drive folder survives a disconnect

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from v4s_lite import attention, budget, full, latents
from v4s_lite.config import PAPER, ClipConfig
from v4s_lite.model import V4SModel, transformer_config
from v4s_lite.utils import get_device, seed_everything

seed_everything(seed)
torch.set_num_threads(1)  # same float results on every machine
dev = get_device(device)
if not quick and dev.type != "cuda":
    print("Full mode needs a GPU: on Colab choose Runtime > Change runtime type > GPU (L4 or A100).")

# %% [markdown]
# ## 1. What a training step needs, before it runs
# At the paper's shape the transformer sees $85 + 46 = 131$ latent frames of $8 \times 13$ patches: 13,624 tokens.
# The weights (bf16) are fixed; the activations kept for the backward pass grow with tokens x blocks:
#
# $$M \approx 2P + 8P_\text{LoRA} + S\,\big[(L-n)\,a + n\cdot 2d + a\big], \qquad a = 4\,d_\text{ffn} + c\,d$$
#
# with $n$ of the $L$ blocks checkpointed (they keep only their input and recompute the rest), and $c$ measured
# on an H100 (28.6 bytes per channel compiled). `budget.estimate_memory` is this formula; `budget.fit_table` asks it
# for each GPU. The same numbers are printed before `v4s wan-train` starts.

# %%
cfg5b = transformer_config("wan2.2-ti2v-5b")
tokens = budget.latent_tokens(cfg5b, PAPER.width, PAPER.height, PAPER.context_latents + PAPER.target_latents)
print(f"parameters {budget.count_params(cfg5b) / 1e9:.2f} B, LoRA rank 32: {budget.lora_params(cfg5b, 32) / 1e6:.1f} M")
print(f"tokens at the paper's setting: {tokens}")
settings = {"no checkpointing": dict(checkpointing="none"), "checkpoint 18 of 30": dict(checkpointing=18),
            "full checkpointing": dict(checkpointing="full")}
table = budget.fit_table(cfg5b, tokens, settings, compiled=True)
for row in table:
    print(f"{row['setting']:>20s}: {row['estimate_gib']:5.1f} GiB  " +
          "  ".join(f"{g}: {'fits' if row[g] else '-'}" for g in budget.GPUS))

# %%
fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
ax.barh([r["setting"] for r in table], [r["estimate_gib"] for r in table], color="tab:blue")
for g, spec in budget.GPUS.items():
    if g != "A100 80 GB":
        ax.axvline(spec["memory_gib"], ls="--", c="gray")
        ax.text(spec["memory_gib"], 2.45, g, fontsize=9, ha="right")
ax.set_xlabel("estimated peak GiB (compiled, LoRA r32)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Measured on an H100: our step against stock diffusers
# `benchmarks/bench_wan.py` times, in one run, stock diffusers and each lever alone at the training shape
# (9,256 tokens, random weights of the exact architecture). Model FLOPs utilisation counts
# `budget.transformer_flops` (training = 3x forward) over the H100's 989 TFLOP/s.

# %%
from v4s_lite.resources import results_file

res_path = results_file("bench_wan_h100.json", must_exist=False)  # results/, found through the package
if res_path is not None:
    res = json.loads(res_path.read_text())
    print(res["gpu"], "|", res["command"].replace("/root/out/", "results/"))
    for name, row in res["variants"].items():
        if "seconds" in row:
            print(f"{name:24s} {row['seconds']:.3g} s  {row['ratio_vs_stock']:.2f}x stock  MFU {row['mfu']:.2f}  "
                  f"peak {row['peak_gb']:.3g} GB")
        else:
            print(f"{name:24s} failed: {row['error'][:40]}")
    for k, s in res["summary"].items():
        print(k, {kk: (round(v, 3) if isinstance(v, float) else v) for kk, v in s.items()})
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    rows = [(n, r) for n, r in res["variants"].items() if "seconds" in r]
    ax.barh([n for n, _ in rows], [r["seconds"] for _, r in rows],
            color=["tab:orange" if r["kind"] == "train" else "tab:green" for _, r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds per step, H100 (orange: training, green: guided denoising)")
    plt.tight_layout()
    plt.show()
else:
    print("results/bench_wan_h100.json was not found: `results_file('bench_wan_h100.json')` says how to get it")

# %% [markdown]
# ## 3. The pipeline, end to end
# Quick mode builds a `WanPipeline` of Wan2.2-TI2V's family (48 latent channels, 16x spatial VAE, per-token
# timesteps) with random weights; full mode loads the real components one at a time with `full.load_wan22`.
# First the encoders fill a cache on disk (`latents.cache_clips`), then they are freed: UMT5-XXL alone is ~11 GB
# and is not needed again while training.

# %%
from v4s_lite.codec import LiteTextEncoder, UMT5TextEncoder, WanVAECodec
from v4s_lite.sampling import sample_context_frames
from v4s_lite.scene import make_scene
from v4s_lite.world import make_clip

clip_cfg = ClipConfig(width=64, height=64, scan_frames=33, context_chunks=2, target_chunks=2, box_frames=4) if quick \
    else PAPER
work = Path(tempfile.mkdtemp()) if quick else Path(out_dir)
if quick:
    pipe = full.tiny_wan22_pipeline(seed=seed)
    vae, transformer = pipe.vae, pipe.transformer
    text_encoder = LiteTextEncoder(dim=transformer.config.text_dim)
else:
    vae = full.load_wan22(source, "vae").to(dev)
    text_encoder = UMT5TextEncoder(full.load_wan22(source, "text_encoder").to(dev), full.load_wan22(source, "tokenizer"))
clips = []
for i in range(2):
    c = make_clip(make_scene(seed + i), "grounding", clip_cfg, seed=seed + i)
    ctx_idx = sample_context_frames(clip_cfg.scan_frames, clip_cfg.context_chunks, np.random.default_rng(seed + i))
    clips.append({"context": torch.from_numpy(c.scan_rgb[ctx_idx]), "target": torch.from_numpy(c.target_rgb),
                  "instruction": c.instruction, "context_frame_indices": torch.tensor(ctx_idx)})
latents.cache_clips(clips, WanVAECodec(vae), text_encoder, work / "latent_cache")
full.free(*([] if quick else [vae, text_encoder.pipe.text_encoder]))
cache = latents.LatentCache(work / "latent_cache")
item = cache[0]
print(len(cache), "clips cached:", {k: tuple(v.shape) for k, v in item.items() if torch.is_tensor(v)})
print("instruction:", item["instruction"])

# %% [markdown]
# ## 4. LoRA training from the cache
# The training loop is notebook 05's `train`; only the inputs change: the transformer (5B, or the tiny one),
# LoRA through peft on the attention and FFN projections, the speed levers of section 2 (`configure_speed`),
# and the cached items. A CUDA out-of-memory inside `full.oom_guard` becomes a message saying what to lower.

# %%
from v4s_lite.config import load_config
from v4s_lite.model import add_lora
from v4s_lite.train import read_log, train

cfg = load_config(None, out_dir=str(work / "run"), model="tiny", lora_rank=4, steps=train_steps, batch_size=1,
                  lr=1e-3, warmup_steps=1, checkpoint_every=train_steps, progress=False, seed=seed,
                  clip=clip_cfg if quick else "paper", device=device)
model = V4SModel(transformer if quick else full.load_wan22(source, "transformer"))
add_lora(model, cfg)
full.configure_speed(model, checkpointing="full" if quick else 18, compile=not quick)
est = budget.estimate_memory(dict(model.config), tokens, compiled=not quick, checkpointing="full" if quick else 18)
with full.oom_guard("training", est):
    run_dir = train(cfg, model=model, items=cache)
print("losses:", [f"{r['loss']:.3g}" for r in read_log(run_dir)])

# %% [markdown]
# ## 5. Export the adapter for diffusers' own pipeline
# `full.export_lora` writes the peft adapter in diffusers' LoRA format; a stock `WanPipeline` loads it with
# `load_lora_weights`. The loaded pipeline's transformer must then compute exactly what ours does.

# %%
full.export_lora(model, work / "lora")
stock = full.tiny_wan22_pipeline(seed=seed) if quick else None
if quick:
    stock.load_lora_weights(str(work / "lora"))
    x = torch.randn(1, 48, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    ts, emb = torch.full((1, 12), 500.0), cache[0]["prompt_embeds"][None]
    model.transformer.rope.set_positions(None)
    with torch.no_grad():
        ours = model.transformer(x, ts, emb, return_dict=False)[0]
        theirs = stock.transformer(x, ts, emb, return_dict=False)[0]
        base = full.tiny_wan22_pipeline(seed=seed).transformer(x, ts, emb, return_dict=False)[0]
    print(f"max |ours - stock pipeline with our LoRA| = {(ours - theirs).abs().max().item():.1e}")
    print("the adapter changed the model (vs no LoRA):", bool((ours - base).abs().max() > 1e-6))
print(sorted(p.name for p in (work / "lora").iterdir()))

# %% [markdown]
# ## 6. Context reuse: why the guided denoising step got about 3x faster
# If clean context tokens attend only to context, nothing about them depends on the noisy target: their keys and
# values are computed once per sample (`attention.ContextCache`, mode "fill") and each denoising step runs only the
# target tokens (mode "reuse"). It is a model choice (the attention mask changes), so a model must be trained
# with it ("masked" mode); the reuse then reproduces the masked model exactly.

# %%
q_tokens = tokens - budget.latent_tokens(cfg5b, PAPER.width, PAPER.height, PAPER.context_latents)
saved = budget.transformer_flops(cfg5b, tokens, query_tokens=q_tokens) / budget.transformer_flops(cfg5b, tokens)
print(f"paper shape: a reuse step costs {saved:.3f} of a full forward ({q_tokens} of {tokens} tokens are queries)")
t = full.tiny_wan22_pipeline(seed=seed).transformer
V4SModel(t)  # gives it the context RoPE (explicit positions)
fc, ft = 3, 2
x = torch.randn(1, 48, fc + ft, 4, 4, generator=torch.Generator().manual_seed(seed))
ts = torch.cat([torch.zeros(1, fc * 4), torch.full((1, ft * 4), 700.0)], 1)
emb = cache[0]["prompt_embeds"][None]
with torch.no_grad(), attention.ContextCache(t) as cc:
    cc.mode, cc.n_context_tokens = "masked", fc * 4
    masked = t(x, ts, emb, return_dict=False)[0][:, :, fc:]
    cc.mode = "fill"
    t(x[:, :, :fc], ts[:, :fc * 4], emb)
    cc.mode = "reuse"
    t.rope.set_positions(list(range(fc, fc + ft)))
    reused = t(x[:, :, fc:], ts[:, fc * 4:], emb, return_dict=False)[0]
print("reuse equals the masked model (to 1e-5):", bool((reused - masked).abs().max() < 1e-5))

# %% [markdown]
# ## Exercise: how many tokens?
# Write `n_tokens(width, height, latent_frames)`: the Wan2.2 VAE divides width and height by 16, the
# transformer's patch by 2 more. Check it on the paper's inference setting (131 latent frames).

# %%
def n_tokens(width, height, latent_frames):
    raise NotImplementedError  # your code here


# %% jupyter={"source_hidden": true}
def solution(width, height, latent_frames):
    return latent_frames * (height // 16 // 2) * (width // 16 // 2)


# %%
from v4s_lite.exercises import check_exercise

ok = check_exercise("tokens at the paper's shape", n_tokens, solution,
                    reference=lambda: budget.latent_tokens(cfg5b, 416, 256, 131), args=(416, 256, 131))

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# - Memory before running: `budget.estimate_memory`, `budget.fit_table`; `v4s wan-memory configs/wan22_ti2v_5b.yaml`.
#   What fits: full checkpointing ~16 GiB (L4 24 GB), 18 of 30 blocks ~37 GiB (A100 40 GB), none ~67 GiB (H100).
# - Caches and freeing encoders: `latents.cache_clips`, `latents.LatentCache`, `full.free`; loading: `full.load_wan22`.
# - Training: `v4s wan-train configs/wan22_ti2v_5b.yaml` (or `_24gb.yaml`), `--resume` after a disconnect.
# - Speed (H100, 9,256 tokens; `python benchmarks/bench_wan.py --out results/bench_wan_h100`): training step
#   1.217 s stock -> 0.851 s compiled with full checkpointing (0.70x, 14.8 GB), 0.689 s checkpointing 10 blocks
#   (0.57x, 40.3 GB); guided denoising step (2 passes) 0.641 s -> 0.419 s compiled (0.65x) -> 0.227 s compiled
#   + context reuse (0.35x). At the paper's inference shape (13,624 tokens): denoising 1.006 s -> 0.259 s (0.26x),
#   training 1.916 s -> 1.380 s (0.72x, 16.8 GB), 1.237 s checkpointing 18 blocks (40.5 GB).
#   Results and caveats: `results/bench_wan_h100.md`, `results/bench_wan_h100_paper.md`, `results/bench_wan_notes.md`.
# - Adapter for diffusers: `full.export_lora` -> `WanPipeline.load_lora_weights`. Context reuse: `attention.ContextCache`.

"""The peer of issue 14's speed goals: DiffSynth-Studio's own Wan2.2-TI2V-5B DiT (`pip install diffsynth`), driven
the way its `model_fn_wan_video` drives it for TI2V, so that `bench_wan.py` times it beside stock diffusers and ours
in one run, on one GPU, at one shape.

Only the DiT is imported: `diffsynth/__init__.py` pulls in the whole pipeline stack (torchvision, modelscope, ...),
so the parent packages are stubbed and `diffsynth.models.wan_video_dit` loads with its own few imports (einops).
`model_fn` is the TI2V branch of `diffsynth.pipelines.wan_video.model_fn_wan_video` (2.1.12) with every option a
TI2V LoRA step does not use left out: per-token timesteps (the first latent frame clean), the text embedding,
patchify, 3D RoPE frequencies, the blocks through DiffSynth's `gradient_checkpoint_forward`, the head. LoRA on
`q, k, v, o, ffn.0, ffn.2` (DiffSynth's Wan LoRA targets), through peft as its trainer adds it.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

# DiffSynth-Studio's config for Wan2.2-TI2V-5B (diffsynth/configs/model_configs.py)
WAN22_TI2V_5B = dict(has_image_input=False, patch_size=(1, 2, 2), in_dim=48, dim=3072, ffn_dim=14336, freq_dim=256,
                     text_dim=4096, out_dim=48, num_heads=24, num_layers=30, eps=1e-6, seperated_timestep=True,
                     require_clip_embedding=False, require_vae_embedding=False, fuse_vae_embedding_in_latents=True)
LORA_TARGETS = ["q", "k", "v", "o", "ffn.0", "ffn.2"]


def import_dit():
    """(WanModel, sinusoidal_embedding_1d, gradient_checkpoint_forward) from an installed diffsynth, without its
    package __init__."""
    if "diffsynth" not in sys.modules:
        spec = importlib.util.find_spec("diffsynth")
        if spec is None:
            raise ImportError("DiffSynth-Studio is not installed: `pip install --no-deps diffsynth einops` (the DiT "
                              "needs only torch and einops)")
        root = Path(spec.submodule_search_locations[0])
        for name, sub in (("diffsynth", ""), ("diffsynth.models", "models"), ("diffsynth.core", "core")):
            stub = types.ModuleType(name)
            stub.__path__ = [str(root / sub)]
            sys.modules[name] = stub
    from diffsynth.core.gradient import gradient_checkpoint_forward
    from diffsynth.models.wan_video_dit import WanModel, sinusoidal_embedding_1d

    return WanModel, sinusoidal_embedding_1d, gradient_checkpoint_forward


def from_diffusers(state_dict: dict) -> dict:
    """A diffusers WanTransformer3DModel state dict renamed for DiffSynth's WanModel, by DiffSynth's own converter
    (`diffsynth/utils/state_dict_converters/wan_video_dit.py`, a plain function loaded by path): with the same
    weights, `model_fn` and diffusers compute the same prediction (tests/test_full.py)."""
    import importlib.util

    import_dit()
    root = Path(sys.modules["diffsynth"].__path__[0])
    spec = importlib.util.spec_from_file_location("_diffsynth_wan_converter",
                                                  root / "utils" / "state_dict_converters" / "wan_video_dit.py")
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    return converter.WanVideoDiTFromDiffusers(state_dict)


def config_from(diffusers_cfg: dict) -> dict:
    """DiffSynth's WanModel arguments for a diffusers WanTransformer3DModel config of the TI2V family (the bench's
    --model: the 5B, or a tiny one on a CPU)."""
    c = diffusers_cfg
    return {**WAN22_TI2V_5B, "dim": c["num_attention_heads"] * c["attention_head_dim"], "ffn_dim": c["ffn_dim"],
            "freq_dim": c["freq_dim"], "text_dim": c["text_dim"], "num_heads": c["num_attention_heads"],
            "num_layers": c["num_layers"], "in_dim": c["in_channels"], "out_dim": c["out_channels"],
            "patch_size": tuple(c["patch_size"]), "eps": c["eps"]}


def build(diffusers_cfg: dict, device, dtype, lora_rank: int = 0, seed: int = 0):
    """A randomly initialised DiffSynth WanModel (frozen), with a peft LoRA of `lora_rank` when > 0."""
    WanModel, _, _ = import_dit()
    torch.manual_seed(seed)
    with torch.device(device):
        dit = WanModel(**config_from(diffusers_cfg))
    dit = dit.to(dtype).eval().requires_grad_(False)
    if lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        dit = inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=LORA_TARGETS), dit)
        for n, p in dit.named_parameters():
            p.requires_grad_("lora_" in n)
    return dit


def model_fn(dit, latents, timestep, context, use_gradient_checkpointing: bool = False):
    """model_fn_wan_video's TI2V path: latents (B, 48, F, H, W), timestep a scalar tensor (0-1000), context
    (B, L, text_dim) -> the prediction (B, 48, F, H, W)."""
    from einops import rearrange

    _, sinusoidal_embedding_1d, gradient_checkpoint_forward = import_dit()
    f_lat, h_lat, w_lat = latents.shape[2:]
    per_frame = h_lat * w_lat // 4  # tokens per latent frame after the 1x2x2 patch
    timestep = torch.cat([torch.zeros((1, per_frame), dtype=latents.dtype, device=latents.device),
                          torch.ones((f_lat - 1, per_frame), dtype=latents.dtype, device=latents.device) * timestep]
                         ).flatten()
    t = dit.time_embedding(sinusoidal_embedding_1d(dit.freq_dim, timestep).unsqueeze(0))
    t_mod = dit.time_projection(t).unflatten(2, (6, dit.dim))
    context = dit.text_embedding(context)
    x = latents
    if x.shape[0] != context.shape[0]:
        x = torch.cat([x] * context.shape[0], dim=0)
    x = dit.patchify(x, None)
    f, h, w = x.shape[2:]
    x = rearrange(x, "b c f h w -> b (f h w) c").contiguous()
    freqs = torch.cat([dit.freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
                       dit.freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
                       dit.freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1)], dim=-1).reshape(f * h * w, 1, -1)
    freqs = freqs.to(x.device)
    for block in dit.blocks:
        x = gradient_checkpoint_forward(block, use_gradient_checkpointing, False, x, context, t_mod, freqs)
    x = dit.head(x, t)
    return dit.unpatchify(x, (f, h, w))

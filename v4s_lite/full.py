"""The real model: Video4Spatial on Wan2.2-TI2V-5B (notebook 10).

What this module adds on top of the lite course (the transformer, LoRA, the latent cache, the memory arithmetic
and the training loop are the course's own modules: model, latents, budget, train):
    load_wan22            the 5B components from the Hub (Colab) or a local folder, one at a time
    free                  drop the encoders once latents.cache_clips has filled the cache (UMT5-XXL is ~11 GB)
    oom_guard             turns CUDA out-of-memory into a message with the settings to lower
    configure_speed       gradient checkpointing (full / selective / none), attention kernel, compilation
    export_lora           a peft adapter saved so diffusers' own `WanPipeline.load_lora_weights` loads it
    tiny_wan22_pipeline   a Wan2.2-TI2V-shaped WanPipeline small enough for a CPU (tests, quick notebooks)
    wan_train             cache, free, load, LoRA, speed levers, train: the `v4s wan-train` command

Weights are never downloaded by tests or quick notebooks: the tiny pipeline is built from configs.
"""
from __future__ import annotations

import contextlib
import gc
from pathlib import Path

import torch

from .budget import GiB, MemoryEstimate, checkpointed_blocks, estimate_memory, fit_table, latent_tokens
from .latents import LatentCache, OnDevice, cache_clips
from .utils import V4SError

WAN22_TI2V_5B = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
OOM_ADVICE = ("Lower, in this order: gradient checkpointing -> 'full' (biggest saving); fewer context chunks "
              "(clip.context_chunks: 42 -> 21 halves the context); a smaller batch; fewer target chunks; a "
              "smaller LoRA rank. `v4s wan-memory --config <yaml>` prints the estimate for a setting.")


@contextlib.contextmanager
def oom_guard(what: str, estimate: MemoryEstimate | None = None):
    """Re-raise CUDA out-of-memory as a V4SError that says what to lower, not a bare traceback."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        gc.collect()
        torch.cuda.empty_cache()
        have = ""
        if torch.cuda.is_available():
            have = f" The GPU has {torch.cuda.get_device_properties(0).total_memory / GiB:.1f} GiB."
        need = f" The estimate for this setting was {estimate}." if estimate is not None else ""
        raise V4SError(f"out of GPU memory during {what}.{have}{need} {OOM_ADVICE}") from e


# ----------------------------------------------------------------------------------------------- speed
def configure_speed(transformer, checkpointing="full", attention_backend: str | None = None,
                    compile: bool = False, compile_mode: str | None = None):
    """Apply the speed levers the benchmark measures one by one; returns the transformer.

    checkpointing: 'full' | 'none' | n (n blocks, evenly spread; see checkpointed_blocks).
    attention_backend: a diffusers backend name ('native', '_native_cudnn', '_native_flash', 'flex', ...).
    compile: torch.compile each transformer block (diffusers' regional compilation: 30 identical blocks
    compile once, so it takes seconds, not minutes).
    """
    transformer = getattr(transformer, "transformer", transformer)  # a V4SModel or the bare diffusers model
    chosen = {id(transformer.blocks[i]) for i in checkpointed_blocks(len(transformer.blocks), checkpointing)}
    if chosen:
        def maybe_checkpoint(block, *args):
            if id(block) in chosen:
                return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False)
            return block(*args)

        transformer.enable_gradient_checkpointing(gradient_checkpointing_func=maybe_checkpoint)
    else:
        transformer.disable_gradient_checkpointing()
    if attention_backend is not None:
        transformer.set_attention_backend(attention_backend)
    if compile:
        # fullgraph=False: ContextCache's fill mode stores keys/values in a Python dict, a side effect
        transformer.compile_repeated_blocks(fullgraph=False, mode=compile_mode)
    else:
        for block in transformer.blocks:  # undo an earlier compile (nn.Module.compile keeps it here)
            block._compiled_call_impl = None
    return transformer


# ------------------------------------------------------------------------------------ context reuse
# ----------------------------------------------------------------------------------------------- loading
def load_wan22(source: str = WAN22_TI2V_5B, component: str = "transformer", dtype=torch.bfloat16,
               local_files_only: bool | None = None):
    """Load one Wan2.2-TI2V-5B component with diffusers/transformers: from the Hub id (Colab) or a local folder.

    component: 'transformer' | 'vae' | 'text_encoder' | 'tokenizer' | 'scheduler'. Loading one at a time is
    the point: the text encoder and VAE are used to fill the cache (cache_clips), then freed, before the
    transformer is loaded for training. A local folder has the pipeline layout (`WanPipeline.save_pretrained`).
    """
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    loaders = {
        "transformer": (WanTransformer3DModel, dict(torch_dtype=dtype)),
        "vae": (AutoencoderKLWan, dict(torch_dtype=torch.float32)),  # the Wan VAE is run in fp32
        "text_encoder": (UMT5EncoderModel, dict(torch_dtype=dtype)),
        "tokenizer": (AutoTokenizer, {}),
        "scheduler": (UniPCMultistepScheduler, {}),
    }
    if component not in loaders:
        raise V4SError(f"unknown component {component!r}; choose one of {sorted(loaders)}")
    local = Path(source).expanduser()
    if local.exists() and not (local / component).is_dir():
        raise V4SError(f"{local} has no '{component}/' subfolder; a local Wan2.2 folder has the pipeline layout "
                       f"(transformer/, vae/, text_encoder/, tokenizer/, scheduler/), e.g. from "
                       f"WanPipeline.save_pretrained or `huggingface-cli download {WAN22_TI2V_5B} --local-dir DIR`")
    cls, kw = loaders[component]
    if local_files_only is not None:
        kw["local_files_only"] = local_files_only
    try:
        return cls.from_pretrained(str(local) if local.exists() else source, subfolder=component, **kw)
    except (OSError, ValueError) as e:
        raise V4SError(f"could not load the {component} of {source!r}: {e}. Without internet (or on this course's CI) "
                       f"pass a local folder with the pipeline layout; on Colab check the runtime has internet and "
                       f"about 35 GB of disk.") from e


def free(*modules) -> None:
    """Drop encoders once the cache is filled, and give their GPU memory back."""
    for m in modules:
        if isinstance(m, torch.nn.Module):
            m.to("meta")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- caching
# ------------------------------------------------------------------------------------------ tiny pipeline
def tiny_wan22_config(num_layers: int = 2) -> dict:
    """A WanTransformer3DModel config of Wan2.2-TI2V-5B's family (48 latent channels, patch 1x2x2, per-token
    timesteps, qk RMS norm across heads, cross-attention norm), small enough for a CPU."""
    return dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48,
                out_channels=48, text_dim=32, freq_dim=32, ffn_dim=48, num_layers=num_layers,
                cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


def tiny_wan22_vae():
    """AutoencoderKLWan in Wan2.2's shape family: z 48, patchified 12-channel input, 4x16x16 compression."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                            out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                            latents_mean=[0.0] * 48, latents_std=[1.0] * 48)


def tiny_wan22_pipeline(seed: int = 0, num_layers: int = 2):
    """A WanPipeline(expand_timesteps=True), Wan2.2-TI2V's layout, built offline with random weights.

    No tokenizer or text encoder: it runs on `prompt_embeds` (text_dim 32), as the cached training data does.
    Its `transformer` is what V4SModel wraps; `save_pretrained` gives a local folder that load_wan22 reads.
    """
    from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**tiny_wan22_config(num_layers))
    vae = tiny_wan22_vae()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return WanPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer, scheduler=scheduler,
                       expand_timesteps=True)


# --------------------------------------------------------------------------------------------- LoRA export
def export_lora(transformer, folder, adapter_name: str = "default") -> Path:
    """Save a peft LoRA adapter in diffusers' format: `WanPipeline.load_lora_weights(folder)` loads it.

    `transformer`: a V4SModel or a WanTransformer3DModel carrying the adapter (train.py adds it with peft).
    """
    from diffusers import WanPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    transformer = getattr(transformer, "transformer", transformer)
    if not getattr(transformer, "peft_config", None) or adapter_name not in transformer.peft_config:
        raise V4SError(f"the transformer carries no LoRA adapter named {adapter_name!r}: train one first "
                       f"(v4s train) or add one with transformer.add_adapter(LoraConfig(...))")
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    state = {k: v.detach().contiguous().cpu() for k, v in convert_state_dict_to_diffusers(state).items()}
    folder = Path(folder)
    WanPipeline.save_lora_weights(str(folder), transformer_lora_layers=state, safe_serialization=True)
    return folder


# ---------------------------------------------------------------------------------------- training CLI
WAN_DEFAULTS = dict(source=WAN22_TI2V_5B, cache_dir="", checkpointing="full", compile=False,
                    attention_backend=None, text_encoder="umt5")


def read_wan_config(path, **overrides):
    """A Wan2.2 training YAML: TrainConfig keys (train.py) plus a `wan:` section (source, cache_dir,
    checkpointing, compile, attention_backend, text_encoder). Returns (TrainConfig, wan settings dict)."""
    import yaml

    from .config import load_config

    path = Path(path)
    if not path.exists():
        raise V4SError(f"config {path} does not exist; the Wan2.2 configs are configs/wan22_ti2v_5b*.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    wan = {**WAN_DEFAULTS, **(data.pop("wan", None) or {})}
    unknown = sorted(set(wan) - set(WAN_DEFAULTS))
    if unknown:
        raise V4SError(f"unknown `wan:` option(s) {unknown} in {path}; known: {sorted(WAN_DEFAULTS)}")
    for k in list(overrides):
        if k.startswith("wan."):
            wan[k[4:]] = overrides.pop(k)
    cfg = load_config(None, **{**data, **overrides})
    return cfg, wan


def memory_report(cfg, wan) -> tuple[MemoryEstimate, list[dict]]:
    """The estimate for this config and the fit table across GPUs (printed before training starts)."""
    from .model import transformer_config

    model = cfg.model if ":" not in cfg.model else "wan2.2-ti2v-5b"
    tcfg = transformer_config(model)
    clip = cfg.clip_config
    tokens = latent_tokens(tcfg, clip.width, clip.height, clip.context_latents + clip.target_latents)
    kw = dict(batch=cfg.batch_size, lora_rank=cfg.lora_rank or 32, lora_targets=cfg.lora_targets,
              compiled=bool(wan["compile"]))
    est = estimate_memory(tcfg, tokens, checkpointing=wan["checkpointing"], **kw)
    return est, fit_table(tcfg, tokens, **kw)


def wan_model(cfg):
    """train.py model factory ('v4s_lite.full:wan_model'): Wan2.2-TI2V-5B from cfg.init_from (Hub id or folder)."""
    from .model import V4SModel

    return V4SModel(load_wan22(cfg.init_from or WAN22_TI2V_5B, "transformer"))


def wan_train(cfg, wan, resume=None):
    """Cache latents + embeddings (then free the encoders), load the 5B transformer, LoRA, speed levers, train."""
    from .codec import LiteTextEncoder, UMT5TextEncoder, WanVAECodec
    from .data import ClipDataset
    from .model import V4SModel
    from .model import add_lora
    from .train import train

    est, table = memory_report(cfg, wan)
    print(f"memory estimate per GPU: {est}")
    for row in table:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    cache = Path(wan["cache_dir"] or Path(cfg.out_dir) / "latent_cache")
    from accelerate import PartialState
    from .utils import get_device

    state = PartialState(cpu=get_device(cfg.device).type == "cpu")  # one process per GPU under accelerate launch
    with state.main_process_first():  # the main process fills the cache; the others then read it
        if not (cache / "cache.json").exists():
            vae = load_wan22(wan["source"], "vae").to(state.device)
            if wan["text_encoder"] == "umt5":
                text = UMT5TextEncoder(load_wan22(wan["source"], "text_encoder").to(state.device),
                                       load_wan22(wan["source"], "tokenizer"))
            else:  # offline runs and tests: the lite encoder at the transformer's text width
                text = LiteTextEncoder(dim=load_wan22(wan["source"], "transformer").config.text_dim)
            clips = ClipDataset(cfg.data_root, cfg.clip_config, sampling=cfg.sampling, seed=cfg.seed)
            with oom_guard("caching latents"):
                cache_clips(clips, OnDevice(WanVAECodec(vae), state.device), text, cache,
                            box_frames=cfg.clip_config.box_frames if cfg.box_frames else 0, progress=cfg.progress)
            free(vae, getattr(text, "pipe", None) and text.pipe.text_encoder)
    dtype = torch.bfloat16 if state.device.type == "cuda" else torch.float32
    model = V4SModel(load_wan22(wan["source"], "transformer", dtype=dtype))
    add_lora(model, cfg)
    configure_speed(model, wan["checkpointing"], wan["attention_backend"], wan["compile"])
    with oom_guard("training", est):
        return train(cfg, resume=resume, model=model, items=LatentCache(cache))


def add_cli(subparsers):
    p = subparsers.add_parser("wan-memory", help="Wan2.2-TI2V-5B: memory estimate of a training config, what fits where")
    p.add_argument("config", help="e.g. configs/wan22_ti2v_5b.yaml")
    p.set_defaults(func=_cli_memory)
    p = subparsers.add_parser("wan-train", help="Wan2.2-TI2V-5B LoRA training: cache latents, free encoders, train")
    p.add_argument("config", help="e.g. configs/wan22_ti2v_5b.yaml (a mounted Drive folder as out_dir survives a disconnect)")
    p.add_argument("--resume", nargs="?", const=True, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set steps=10 --set wan.checkpointing=full")
    p.set_defaults(func=_cli_train)
    # One entrance for Wan training: `v4s train <yaml with a wan: section>` lands in _cli_train as well. The hook is
    # added here because train.py, an earlier chapter, must not import this module (docs/DESIGN.md, layers).
    if "train" in subparsers.choices:
        lite = subparsers.choices["train"]
        lite_cli = lite.get_default("func")
        lite.set_defaults(func=lambda args: _cli_train(args) if _is_wan_config(args.config) else lite_cli(args))


def _is_wan_config(path) -> bool:
    import yaml

    path = Path(path)
    return path.exists() and "wan" in (yaml.safe_load(path.read_text()) or {})


def _cli_memory(args):
    cfg, wan = read_wan_config(args.config)
    est, table = memory_report(cfg, wan)
    print(f"{args.config}: {est}")
    for row in table:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    return 0


def _cli_train(args):
    from .config import parse_override

    cfg, wan = read_wan_config(args.config, **dict(parse_override(s) for s in args.set))
    print(f"trained; run in {wan_train(cfg, wan, resume=args.resume)}")
    return 0

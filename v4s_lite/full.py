"""The real model: Video4Spatial on Wan2.2-TI2V-5B (notebook 10).

What this module adds on top of the lite course (the transformer, LoRA, the latent cache, the memory arithmetic
and the training loop are the course's own modules: model, latents, budget, train):
    load_wan22            the 5B components from the Hub (Colab) or a local folder, one at a time
    free                  drop the encoders once latents.cache_clips has filled the cache (UMT5-XXL is ~11 GB)
    oom_guard             turns CUDA out-of-memory into a message with the settings to lower
    configure_speed       gradient checkpointing (full / n blocks / none, optionally keeping attention outputs),
                          attention kernel, compilation
    export_lora           the adapter as diffusers' own `WanPipeline.load_lora_weights` loads it (checkpoints.save_lora)
    tiny_wan22_pipeline   a Wan2.2-TI2V-shaped WanPipeline small enough for a CPU (tests, quick notebooks)
    wan_model, wan_vae, wan_text_encoder
                          the factories a config's `wan:` section selects: a run rebuilds from its saved config
    random_wan22_folder   Wan2.2-TI2V-5B's exact architecture with random weights, offline (`v4s wan-random`)
    wan_train             `v4s train` with the memory estimate first: the `v4s wan-train` command

Weights are never downloaded by tests or quick notebooks: the tiny pipeline is built from configs.
"""
from __future__ import annotations

import contextlib
import gc
from functools import partial
from pathlib import Path

import torch
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from .budget import GiB, MemoryEstimate, checkpointed_blocks, estimate_memory, fit_table, latent_tokens
from .checkpoints import save_lora
from .config import WAN22_TI2V_5B
from .utils import V4SError
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
# The fused attention kernels whose outputs a checkpointed block keeps with `keep_attention` (CPU, CUDA flash,
# memory-efficient and cuDNN): recomputing them is the dearest part of a block's recomputation at long sequences.
ATTENTION_OPS = tuple(getattr(torch.ops.aten, name).default for name in (
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu")
    if hasattr(torch.ops.aten, name))
SDPA_BACKENDS = ("native", "_native_flash", "_native_efficient", "_native_cudnn")  # diffusers' names for them


def _keep_attention(ctx, op, *args, **kwargs):
    """Selective activation checkpointing's policy: save the self-attention outputs (queries and keys of the same
    length), recompute everything else (cross-attention to 512 text tokens is cheap to recompute). Called for every
    op a checkpointed block runs, forward and recompute: it does no more than look at the op."""
    self_attention = op in ATTENTION_OPS and args[0].shape[-2] == args[1].shape[-2]
    return CheckpointPolicy.MUST_SAVE if self_attention else CheckpointPolicy.PREFER_RECOMPUTE


def configure_speed(transformer, checkpointing="full", attention_backend: str | None = None,
                    compile: bool = False, compile_mode: str | None = None, keep_attention: bool = False):
    """Apply the speed levers the benchmark measures one by one; returns the transformer.

    checkpointing: 'full' | 'none' | n (n blocks, evenly spread; see checkpointed_blocks).
    keep_attention: a checkpointed block keeps its self-attention output (selective activation checkpointing,
    torch's `create_selective_checkpoint_contexts`), so backward recomputes only its projections, norms, FFN and
    the cheap cross-attention. At 9,256 tokens self-attention is ~28% of a block's forward FLOPs and about half its
    time once the projections run in FP8; the cost is 2 d bytes per token per checkpointed block (57 MB for
    Wan2.2-TI2V-5B at 9,256 tokens). Only fused SDPA kernels are kept (ATTENTION_OPS): a math-path attention is
    recomputed as before.
    attention_backend: a diffusers backend name ('native', '_native_cudnn', '_native_flash', 'flex', ...).
    compile: torch.compile each transformer block (diffusers' regional compilation: 30 identical blocks
    compile once, so it takes seconds, not minutes).
    """
    transformer = getattr(transformer, "transformer", transformer)  # a V4SModel or the bare diffusers model
    chosen = {id(transformer.blocks[i]) for i in checkpointed_blocks(len(transformer.blocks), checkpointing)}
    if keep_attention and not chosen:
        raise V4SError("keep_attention (wan.checkpoint_keeps_attention) only changes checkpointed blocks, and "
                       f"checkpointing={checkpointing!r} checkpoints none: set wan.checkpointing to 'full' or a "
                       "number of blocks, or leave keep_attention off")
    if keep_attention and attention_backend not in (None, *SDPA_BACKENDS):
        raise V4SError(f"keep_attention keeps the outputs of torch's fused SDPA kernels; attention_backend="
                       f"{attention_backend!r} does not run them, so nothing would be kept: use one of "
                       f"{list(SDPA_BACKENDS)} (or the default), or leave keep_attention off")
    if chosen:
        kw = dict(context_fn=partial(create_selective_checkpoint_contexts, _keep_attention)) if keep_attention else {}

        def maybe_checkpoint(block, *args):
            if id(block) in chosen:
                return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False, **kw)
            return block(*args)

        transformer.enable_gradient_checkpointing(gradient_checkpointing_func=maybe_checkpoint)
    else:
        transformer.disable_gradient_checkpointing()
    if attention_backend is not None:  # note: diffusers also makes it the process-wide default (diffusers 0.42)
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
export_lora = save_lora  # the adapter in diffusers' pipeline format (what checkpoints hold; `v4s export` copies it)


# ------------------------------------------------------------------------------------- factories (config)
# A `wan:` section selects these (config.WAN_FACTORIES): build_model / build_codecs call them with the TrainConfig,
# so training, `v4s sample`, `v4s eval --checkpoint` and `v4s export` rebuild a 5B run from its saved config alone.
def wan_model(cfg):
    """The base transformer from cfg.wan.source (bf16 on a GPU), with the speed levers of cfg.wan applied;
    model_overrides: {rope_max_seq_len: N} raises the RoPE table for long scans (anything else is refused)."""
    from .model import V4SModel, pretrained_overrides
    from .utils import get_device

    dtype = torch.bfloat16 if get_device(cfg.device).type == "cuda" else torch.float32
    model = V4SModel(load_wan22(cfg.wan.source, "transformer", dtype=dtype), rope_max_seq_len=pretrained_overrides(cfg))
    configure_speed(model, cfg.wan.checkpointing, cfg.wan.attention_backend, cfg.wan.compile,
                    keep_attention=cfg.wan.checkpoint_keeps_attention)
    return model


def wan_vae(cfg):
    """Wan2.2's VAE from cfg.wan.source as a codec, on cfg.device (fp32: the Wan VAE is run in fp32)."""
    from .codec import WanVAECodec
    from .utils import get_device

    return WanVAECodec(load_wan22(cfg.wan.source, "vae").to(get_device(cfg.device)).eval())


UMT5_RESIDENT_MIN_GIB = 40  # below this much GPU memory UMT5-XXL stays on the CPU between encodes


def wan_text_encoder(cfg):
    """UMT5-XXL from cfg.wan.source (wan.text_encoder "umt5"), or the lite encoder at the transformer's text width
    ("lite": offline runs and tests; the transformer's config is read, not its weights)."""
    from diffusers import WanTransformer3DModel

    from .codec import LiteTextEncoder, UMT5TextEncoder
    from .utils import get_device

    if cfg.wan.text_encoder == "lite":
        local = Path(cfg.wan.source).expanduser()
        config = WanTransformer3DModel.load_config(str(local) if local.exists() else cfg.wan.source,
                                                   subfolder="transformer")
        return LiteTextEncoder(dim=config["text_dim"])
    device = get_device(cfg.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    encoder = load_wan22(cfg.wan.source, "text_encoder", dtype=dtype).eval()
    tokenizer = load_wan22(cfg.wan.source, "tokenizer")
    if device.type == "cuda" and torch.cuda.get_device_properties(device).total_memory < UMT5_RESIDENT_MIN_GIB * GiB:
        # a 24 GB GPU cannot hold UMT5-XXL (11 GB) beside the 5B transformer and the VAE while sampling:
        # it lives on the CPU and visits the GPU only to encode (two prompts per video; ~2 s each way)
        return UMT5TextEncoder(encoder, tokenizer, run_device=device)
    return UMT5TextEncoder(encoder.to(device), tokenizer)


# ------------------------------------------------------------------------------------ random-weight folders
# Wan-AI/Wan2.2-TI2V-5B-Diffusers' vae/config.json (values that differ from AutoencoderKLWan's defaults).
WAN22_VAE_CONFIG = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
    temperal_downsample=[False, True, True], dropout=0.0, is_residual=True, in_channels=12, out_channels=12,
    patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
    latents_mean=[-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813,
                  0.0891, 0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108,
                  -0.2158, 0.2502, -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313,
                  -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944,
                  0.3573, -0.0548, -0.1681, -0.0667],
    latents_std=[0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
                 0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
                 0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
                 0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744])
# google/umt5-xxl's encoder (Wan2.2's text encoder), and the tiny one of the same family for CPU tests.
UMT5_XXL_CONFIG = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                       relative_attention_num_buckets=32, relative_attention_max_distance=128,
                       feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                       tie_word_embeddings=False)
TINY_UMT5_CONFIG = dict(UMT5_XXL_CONFIG, vocab_size=512, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
WAN22_SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                       num_train_timesteps=1000)


def offline_tokenizer(vocab_size: int = 512):
    """A T5-style tokenizer built without a download: the course's instruction words (every word `language`
    can write), then </s> appended, padding with <pad> = 0 as UMT5 expects. Ids stay below `vocab_size`; any
    other word becomes <unk>. It stands in for google/umt5-xxl's SentencePiece model when no network is there."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from .language import vocabulary

    words = ["<pad>", "</s>", "<unk>"] + sorted(vocabulary())
    if len(words) > vocab_size:
        raise V4SError(f"the course's {len(words)} words do not fit a vocabulary of {vocab_size}")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def random_wan22_folder(folder, size: str = "5b", seed: int = 0, device="cpu") -> Path:
    """A local Wan2.2-TI2V folder in diffusers' pipeline layout (model_index.json, transformer/, vae/, text_encoder/,
    tokenizer/, scheduler/) with random weights: size "5b" is the exact architecture of Wan2.2-TI2V-5B (transformer
    5.0 B, VAE, UMT5-XXL encoder 5.7 B; ~22 GB in bf16), "tiny" the same family small enough for a CPU.
    `wan.source: <folder>` then runs the whole 5B path offline: timings and memory are real, videos are noise."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from .model import transformer_config

    if size not in ("5b", "tiny"):
        raise V4SError(f"size={size!r}: choose '5b' (the exact architecture) or 'tiny' (CPU tests)")
    torch.manual_seed(seed)
    big = size == "5b"
    dtype = torch.bfloat16 if big else torch.float32
    with torch.device(device):  # initialising 10 B parameters on a GPU takes seconds, on a CPU minutes
        transformer = WanTransformer3DModel(**(transformer_config("wan2.2-ti2v-5b") if big else
                                               {**tiny_wan22_config(2), "text_dim": TINY_UMT5_CONFIG["d_model"]}))
        vae = AutoencoderKLWan(**WAN22_VAE_CONFIG) if big else tiny_wan22_vae()
        text_encoder = UMT5EncoderModel(UMT5Config(**(UMT5_XXL_CONFIG if big else TINY_UMT5_CONFIG)))
    pipe = WanPipeline(tokenizer=offline_tokenizer(), text_encoder=text_encoder.to(dtype), vae=vae,
                       transformer=transformer.to(dtype), scheduler=UniPCMultistepScheduler(**WAN22_SCHEDULER),
                       expand_timesteps=True)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


# ---------------------------------------------------------------------------------------- training CLI
def memory_report(cfg) -> tuple[MemoryEstimate, list[dict]]:
    """The estimate for this config and the fit table across GPUs (printed before training starts)."""
    from .model import transformer_config

    tcfg = transformer_config("wan2.2-ti2v-5b")
    clip = cfg.clip_config
    tokens = latent_tokens(tcfg, clip.width, clip.height, clip.context_latents + clip.target_latents)
    wan = cfg.wan
    kw = dict(batch=cfg.batch_size, lora_rank=cfg.lora_rank or 32, lora_targets=cfg.lora_targets,
              compiled=bool(wan.compile), fp8_base=bool(wan.fp8_base), keep_attention=wan.checkpoint_keeps_attention)
    est = estimate_memory(tcfg, tokens, checkpointing=wan.checkpointing, **kw)
    return est, fit_table(tcfg, tokens, **kw)


def wan_train(cfg, resume=None):
    """`v4s train` for a config with a `wan:` section, with the memory estimate printed first and CUDA
    out-of-memory turned into advice. Caching (then freeing the encoders), LoRA and the loop are train()'s own."""
    from .sample import validation_hook
    from .train import train

    if cfg.wan is None:
        raise V4SError("wan_train needs a config with a `wan:` section (configs/wan22_ti2v_5b*.yaml)")
    est, table = memory_report(cfg)
    print(f"memory estimate per GPU: {est}")
    for row in table:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    with oom_guard("training", est):
        return train(cfg, resume=resume, on_validate=validation_hook(cfg) if cfg.validate_every else None)


def add_cli(subparsers):
    p = subparsers.add_parser("wan-memory", help="Wan2.2-TI2V-5B: memory estimate of a training config, what fits where")
    p.add_argument("config", help="e.g. configs/wan22_ti2v_5b.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, as in v4s train")
    p.set_defaults(func=_cli_memory)
    p = subparsers.add_parser("wan-train", help="Wan2.2-TI2V-5B LoRA training (= v4s train + the memory estimate)")
    p.add_argument("config", help="e.g. configs/wan22_ti2v_5b.yaml (a mounted Drive folder as out_dir survives a disconnect)")
    p.add_argument("--resume", nargs="?", const=True, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set steps=10 --set wan.checkpointing=full")
    p.set_defaults(func=_cli_train)
    p = subparsers.add_parser("wan-random", help="a local Wan2.2-TI2V folder with random weights of the exact "
                                                 "architecture (offline runs: --set wan.source=FOLDER)")
    p.add_argument("folder")
    p.add_argument("--size", default="5b", choices=["5b", "tiny"])
    p.add_argument("--device", default="auto", help="where to initialise the weights (a GPU is much faster)")
    p.set_defaults(func=_cli_random)


def _wan_config(args):
    from .config import load_config, parse_override

    cfg = load_config(args.config, **dict(parse_override(s) for s in args.set))
    if cfg.wan is None:
        raise V4SError(f"{args.config} has no `wan:` section: it is a lite config, train it with `v4s train`")
    return cfg


def _cli_memory(args):
    cfg = _wan_config(args)
    est, table = memory_report(cfg)
    print(f"{args.config}: {est}")
    for row in table:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    return 0


def _cli_train(args):
    print(f"trained; run in {wan_train(_wan_config(args), resume=args.resume)}")
    return 0


def _cli_random(args):
    from .utils import get_device

    print(f"wrote {random_wan22_folder(args.folder, args.size, device=get_device(args.device))}")
    return 0

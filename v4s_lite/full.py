"""The real model: Video4Spatial on Wan2.2-TI2V-5B (notebook 10).

What this module adds on top of the lite course (the transformer, LoRA and the training loop are the same code):
    load_wan22            the 5B components from the Hub (Colab) or a local folder, one at a time
    cache_clips           UMT5 instruction embeddings + Wan2.2 VAE latents precomputed to disk, so the
                          encoders (about 11 GB of UMT5-XXL, and the VAE) are freed before training starts
    LatentCache           a torch Dataset over that folder
    estimate_memory       what a training step needs, before it runs; fit_table: what fits where
    oom_guard             turns CUDA out-of-memory into a message with the settings to lower
    configure_speed       gradient checkpointing (full / selective / none), attention kernel, compilation
    ContextCache          context reuse: clean context tokens attend only to context, so their keys and
                          values are computed once per sample instead of at every denoising step
    export_lora           a peft adapter saved so diffusers' own `WanPipeline.load_lora_weights` loads it
    tiny_wan22_pipeline   a Wan2.2-TI2V-shaped WanPipeline small enough for a CPU (tests, quick notebooks)
    transformer_flops     the FLOP count behind the benchmark's model FLOPs utilisation

Weights are never downloaded by tests or quick notebooks: the tiny pipeline is built from configs.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .utils import V4SError

WAN22_TI2V_5B = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
from .train import WAN_LORA_TARGETS as LORA_TARGETS  # noqa: E402 - attention + FFN projections, train.py's list
TEXT_TOKENS = 512  # UMT5 sequence length in Wan pipelines (prompts are padded to it)
GiB = 2**30

# Memory a GPU offers to PyTorch (GiB) and its dense bf16 peak (TFLOP/s, datasheet), for fit tables and MFU.
GPUS = {
    "L4 24 GB": dict(memory_gib=22.0, bf16_tflops=121.0),
    "A100 40 GB": dict(memory_gib=39.4, bf16_tflops=312.0),
    "A100 80 GB": dict(memory_gib=79.1, bf16_tflops=312.0),
    "H100 80 GB": dict(memory_gib=79.1, bf16_tflops=989.4),
}


# ----------------------------------------------------------------------------------------------- FLOPs
def transformer_flops(config, tokens: int, batch: int = 1, text_tokens: int = TEXT_TOKENS,
                      query_tokens: int | None = None) -> float:
    """Forward FLOPs of a WanTransformer3DModel (matrix products only; norms and activations are noise).

    Per layer, with d = heads * head_dim, S keys/values, Q query tokens (Q = S unless context reuse), T text tokens:
        projections   2 * Q * (4 d^2 + 2 d^2 + 2 d ffn)    self-attn q,k,v,o + cross-attn q,o + FFN
                      + 2 * T * 2 d^2                       cross-attn k,v on the text
        attention     4 * Q * S * d + 4 * Q * T * d         (q k^T and p v, self and cross)
    plus the patch embedding, output projection, text projection (2 layers) and, because Wan2.2-TI2V gives
    every token its own timestep, the time embedding MLP per query token. A training step counts 3x this (forward + backward,
    the usual convention for model FLOPs utilisation; recomputation by checkpointing is not counted).
    """
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    ffn, layers = c["ffn_dim"], c["num_layers"]
    q = tokens if query_tokens is None else query_tokens
    patch = math.prod(c["patch_size"])
    per_layer = (2 * q * (6 * d * d + 2 * d * ffn) + 2 * text_tokens * 2 * d * d
                 + 4 * q * tokens * d + 4 * q * text_tokens * d)
    io = (2 * q * d * patch * (c["in_channels"] + c["out_channels"]) + 2 * text_tokens * (c["text_dim"] + d) * d
          + 2 * q * (c["freq_dim"] + d + 6 * d) * d)
    return float(batch * (layers * per_layer + io))


def latent_tokens(config, width: int, height: int, latent_frames: int, spatial_factor: int = 16) -> int:
    """Tokens the transformer sees for `latent_frames` latents of a width x height video."""
    _, ph, pw = config["patch_size"]
    return latent_frames * (height // spatial_factor // ph) * (width // spatial_factor // pw)


# ---------------------------------------------------------------------------------------------- memory
# Bytes kept for backward per token per transformer block: the FFN's two ffn-wide activations (gelu input and
# output, bf16) plus ACT_D bytes per model channel (fp32 norms and per-token modulations, q/k/v before and after
# norm and RoPE, attention output...). Measured on one H100 at 9,256 tokens (results/bench_wan_h100.json):
# compiled, every block left out of checkpointing adds 1.253 GiB (sel6 -> sel10 -> none agree to 0.1%) -> 28.6;
# eager without checkpointing did not fit 79 GiB, so eager keeps at least ~2.25 GiB a block -> 66 (a bound).
ACT_FFN = 4
ACT_D_EAGER = 66.0
ACT_D_COMPILED = 28.6  # torch.compile fuses the fp32 norm/modulation/RoPE chains: fewer intermediates kept
LORA_BYTES = 8  # bf16 LoRA weight + gradient + two AdamW moments (bf16 everything)


@dataclass
class MemoryEstimate:
    weights_gib: float
    lora_gib: float
    activations_gib: float
    overhead_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.lora_gib + self.activations_gib + self.overhead_gib

    def __str__(self) -> str:
        return (f"weights {self.weights_gib:.1f} GiB + LoRA/optimizer {self.lora_gib:.2f} GiB + activations "
                f"{self.activations_gib:.1f} GiB + overhead {self.overhead_gib:.1f} GiB = {self.total_gib:.1f} GiB")


def count_params(config) -> int:
    """Parameters of a WanTransformer3DModel built from `config`, without building it (meta device)."""
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel(**_init_kwargs(config))
    return sum(p.numel() for p in model.parameters())


def lora_params(config, rank: int, targets=LORA_TARGETS) -> int:
    """Trainable parameters of a rank-`rank` LoRA on `targets` in every block: rank * (in + out) per matrix."""
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    shapes = {"to_q": (d, d), "to_k": (d, d), "to_v": (d, d), "to_out.0": (d, d),
              "ffn.net.0.proj": (d, c["ffn_dim"]), "ffn.net.2": (c["ffn_dim"], d)}
    unknown = [t for t in targets if t not in shapes]
    if unknown:
        raise V4SError(f"unknown LoRA targets {unknown}; choose from {sorted(shapes)}")
    per_block = sum(rank * sum(shapes[t]) for t in targets) * 2  # attn1 and attn2 both match to_q/k/v/out
    per_block -= sum(rank * sum(shapes[t]) for t in targets if t.startswith("ffn"))  # one FFN per block
    return per_block * c["num_layers"]


def checkpointed_blocks(num_layers: int, checkpointing) -> list[int]:
    """Which blocks recompute their activations in backward.

    "full" = all, "none" = none, an int n = n blocks spread evenly (selective checkpointing: memory grows by one
    block's activations for every block left out, speed by one block's forward).
    """
    if checkpointing in ("full", True):
        return list(range(num_layers))
    if checkpointing in ("none", False, None, 0):
        return []
    if isinstance(checkpointing, str) and checkpointing.isdigit():
        checkpointing = int(checkpointing)
    if not isinstance(checkpointing, int) or not 0 <= checkpointing <= num_layers:
        raise V4SError(f"gradient checkpointing must be 'full', 'none' or a number of blocks 0..{num_layers}; "
                       f"got {checkpointing!r}")
    return sorted({round((i + 0.5) * num_layers / checkpointing - 0.5) for i in range(checkpointing)})


def estimate_memory(config, tokens: int, batch: int = 1, lora_rank: int = 32, lora_targets=LORA_TARGETS,
                    checkpointing="full", compiled: bool = False, weight_bytes: int = 2) -> MemoryEstimate:
    """Peak GPU memory of one LoRA training step of the transformer (encoders already freed: see cache_clips).

    Activations: every block keeps `ACT_FFN * ffn + ACT_D * d` bytes per token for backward, a checkpointed
    block only its input (2 d bytes) plus, while it is recomputed, one block's worth. Calibrated on an H100
    (see ACT_D_EAGER); the model's own per-token modulation tensors (6 d, bf16) come on top.
    """
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    layers = c["num_layers"]
    per_block = ACT_FFN * c["ffn_dim"] + (ACT_D_COMPILED if compiled else ACT_D_EAGER) * d
    n_ckpt = len(checkpointed_blocks(layers, checkpointing))
    per_token = (layers - n_ckpt) * per_block + n_ckpt * 2 * d + (per_block if n_ckpt else 0) + 2 * 8 * d
    return MemoryEstimate(
        weights_gib=count_params(c) * weight_bytes / GiB,
        lora_gib=lora_params(c, lora_rank, lora_targets) * LORA_BYTES / GiB,
        activations_gib=batch * tokens * per_token / GiB,
        overhead_gib=1.0,  # CUDA workspaces, allocator slack, text embeddings, the loss
    )


def fit_table(config, tokens: int, settings: dict | None = None, gpus=GPUS, **kw) -> list[dict]:
    """Which settings fit on which GPU: one row per setting with the estimate and a yes/no per GPU."""
    settings = settings or {"no checkpointing": dict(checkpointing="none"),
                            "checkpoint half the blocks": dict(checkpointing=c_half(config)),
                            "full checkpointing": dict(checkpointing="full")}
    rows = []
    for name, s in settings.items():
        est = estimate_memory(config, tokens, **{**kw, **s})
        rows.append({"setting": name, "estimate_gib": round(est.total_gib, 1),
                     **{g: est.total_gib <= spec["memory_gib"] for g, spec in gpus.items()}})
    return rows


def c_half(config) -> int:
    return dict(config)["num_layers"] // 2


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
class ContextCache:
    """Context reuse for sampling: compute the clean context's keys and values once per sample.

    The model choice: in self-attention, context tokens attend only to context tokens (target tokens attend to
    everything). Then nothing about the context depends on the noisy target or its timestep, so across the
    ~50 denoising steps the context's per-layer keys/values never change. Modes:
        "masked"  one sequence [context | target]: the reference, and how such a model is trained
        "fill"    the input is the context alone: run it once, keep every layer's k, v
        "reuse"   the input is the target alone: its queries attend to [kept context k, v | own k, v]
    Only the first `n_context_tokens` tokens count as context in "masked" mode. Each denoising step then
    costs the target tokens' share of the projections and of the attention (about half, at the paper's shape).
    """

    def __init__(self, transformer):
        self.transformer = getattr(transformer, "transformer", transformer)
        self.mode = "masked"
        self.n_context_tokens = 0
        self._old = {}

    def __enter__(self):
        for block in self.transformer.blocks:
            self._old[block] = block.attn1.processor
            block.attn1.set_processor(_ContextAttnProcessor(self, self._old[block]))
        return self

    def __exit__(self, *exc):
        for block, proc in self._old.items():
            block.attn1.set_processor(proc)
        self._old.clear()
        return False

    def clear(self) -> None:
        """Forget the cached context (a new sample); the next 'reuse' needs a 'fill' first."""
        for block in self.transformer.blocks:
            if isinstance(block.attn1.processor, _ContextAttnProcessor):
                block.attn1.processor.kv = None


def _rotate(x, cos, sin):
    # diffusers' Wan rotary embedding (interleaved pairs), on (B, S, heads, head_dim)
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).type_as(x)


class _ContextAttnProcessor:
    """WanAttnProcessor's self-attention path with ContextCache's masking/caching (see ContextCache)."""

    def __init__(self, cache: ContextCache, base):
        # the layer's cached context keys/values live here, not in a table indexed by layer: an int index
        # would be a constant to torch.compile and recompile the shared block code once per layer
        self.cache, self.kv = cache, None
        self._attention_backend = getattr(base, "_attention_backend", None)
        self._parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        q, k, v = _get_qkv_projections(attn, hidden_states, None)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))
        if rotary_emb is not None:
            q, k = _rotate(q, *rotary_emb), _rotate(k, *rotary_emb)

        def attend(q_, k_, v_):
            return dispatch_attention_fn(q_, k_, v_, backend=self._attention_backend)

        mode = self.cache.mode
        if mode == "masked":
            n = self.cache.n_context_tokens
            if not 0 < n <= q.shape[1]:
                raise V4SError(f"ContextCache.n_context_tokens={n} must be in 1..{q.shape[1]} (the sequence length)")
            out = torch.cat([attend(q[:, :n], k[:, :n], v[:, :n]), attend(q[:, n:], k, v)], dim=1)
        elif mode == "fill":
            self.kv = (k, v)
            out = attend(q, k, v)
        elif mode == "reuse":
            if self.kv is None:
                raise V4SError("ContextCache is in 'reuse' mode but holds no context: run the context once in 'fill' mode")
            kc, vc = self.kv
            if kc.shape[0] != q.shape[0]:
                raise V4SError(f"the cached context has batch {kc.shape[0]} but this step has batch {q.shape[0]}")
            out = attend(q, torch.cat([kc, k], dim=1), torch.cat([vc, v], dim=1))
        else:
            raise V4SError(f"ContextCache.mode must be 'masked', 'fill' or 'reuse'; got {mode!r}")
        out = out.flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


# ----------------------------------------------------------------------------------------------- loading
def _init_kwargs(config) -> dict:
    from diffusers import WanTransformer3DModel
    import inspect

    allowed = inspect.signature(WanTransformer3DModel.__init__).parameters
    return {k: v for k, v in dict(config).items() if k in allowed}


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
CACHE_VERSION = 1


def _to_video(frames) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (1, 3, F, H, W) in [-1, 1], the codecs' input."""
    from .codec import frames_to_video

    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise V4SError(f"frames must be uint8 (F, H, W, 3); got {x.dtype} {tuple(x.shape)}")
    return frames_to_video(x)


@torch.no_grad()
def encode_clip(item, codec, text_encoder, box_frames: int = 0) -> dict:
    """One ClipDataset-style item (`context`, `target` uint8 (F,H,W,3), `instruction`, `context_frame_indices`)
    -> what training reads, the keys of LatentCache items. `box_frames` > 0 draws the red box on the last frames
    of a grounding target first (bbox.bbox_frames); navigation targets have no object to box."""
    missing = [k for k in ("context", "target", "instruction") if k not in item]
    if missing:
        raise V4SError(f"a clip lacks {missing}; the encoders read ClipDataset items")
    target = item["target"]
    if box_frames and item.get("meta", {}).get("task") == "grounding":
        from .bbox import bbox_frames
        target = bbox_frames(torch.as_tensor(target).numpy(), torch.as_tensor(item["boxes"]).numpy(), box_frames)
    idx = torch.as_tensor(item.get("context_frame_indices", range(len(item["context"]))), dtype=torch.long)
    return {"context_latents": codec.encode(_to_video(item["context"]))[0].contiguous().cpu(),
            "target_latents": codec.encode(_to_video(target))[0].contiguous().cpu(),
            "prompt_embeds": text_encoder.encode([item["instruction"]])[0].contiguous().cpu(),
            "context_frame_indices": idx.contiguous(), "instruction": item["instruction"]}


def write_latent_cache(folder, items, null, n: int) -> Path:
    """`n` encode_clip items (any iterable: written as they come) and the null ("") embedding -> the folder
    LatentCache reads: one safetensors file per item, `null.safetensors`, and `cache.json` (count, shapes, a
    fingerprint of the null embedding) written last, so an interrupted write is never read as complete."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cache.json").unlink(missing_ok=True)
    null = null.contiguous().cpu()
    save_file({"prompt_embeds": null}, str(folder / "null.safetensors"))
    shapes, count = None, 0
    for i, item in enumerate(items):
        save_file({k: item[k] for k in ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices")},
                  str(folder / f"{i:06d}.safetensors"), metadata={"instruction": item["instruction"]})
        shapes = {k: list(item[k].shape) for k in ("context_latents", "target_latents", "prompt_embeds")}
        count += 1
    if count != n:
        raise V4SError(f"write_latent_cache: expected {n} items, got {count}")
    manifest = {"version": CACHE_VERSION, "count": n, "shapes": shapes,
                "null_fingerprint": hashlib.sha1(null.float().numpy().tobytes()).hexdigest()[:16]}
    (folder / "cache.json").write_text(json.dumps(manifest, indent=1))
    return folder


@torch.no_grad()
def cache_clips(clips, codec, text_encoder, folder, box_frames: int = 0, progress: bool = False) -> Path:
    """Precompute what training reads from the encoders, once, to `folder` (encode_clip per clip, then
    write_latent_cache). clips: any sequence of ClipDataset-style items. codec: a LatentCodec
    (`encode(video) -> latents`); text_encoder: a TextEncoder (`encode(list[str]) -> (B, L, D)`). `box_frames`
    > 0 draws the red box on the last frames of grounding targets first, as train.encode_clips does. Free the
    encoders afterwards: `free(codec_module, text_module)`.
    """
    n = len(clips)
    if n == 0:
        raise V4SError("no clips to cache: the dataset is empty (make one with `v4s make-data`)")
    iterator = range(n)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="caching latents")
    items = (encode_clip(clips[i], codec, text_encoder, box_frames) for i in iterator)
    return write_latent_cache(folder, items, text_encoder.encode([""])[0], n)


class LatentCache(torch.utils.data.Dataset):
    """The folder written by cache_clips, as a Dataset of dicts of tensors (the training loop's input)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        manifest = self.folder / "cache.json"
        if not manifest.exists():
            raise V4SError(f"{self.folder} is not a latent cache (no cache.json); fill it with cache_clips "
                           f"or `v4s wan-cache`")
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("version") != CACHE_VERSION:
            raise V4SError(f"{self.folder} was cached by format version {self.manifest.get('version')}, this code "
                           f"reads version {CACHE_VERSION}: delete the folder and cache again")
        self.files = sorted(self.folder.glob("[0-9]*.safetensors"))
        if len(self.files) != self.manifest["count"]:
            raise V4SError(f"{self.folder} should hold {self.manifest['count']} clips but has {len(self.files)} "
                           f"(an interrupted cache_clips?): cache again")
        from safetensors.torch import load_file
        self.null_embeds = load_file(str(self.folder / "null.safetensors"))["prompt_embeds"]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from safetensors import safe_open
        from safetensors.torch import load_file

        item = load_file(str(self.files[i]))
        with safe_open(str(self.files[i]), "pt") as f:
            item["instruction"] = f.metadata()["instruction"]
        return item


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

    from .train import load_config

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
    from .train import add_lora, train

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
                cache_clips(clips, _OnDevice(WanVAECodec(vae), state.device), text, cache,
                            box_frames=cfg.clip_config.box_frames if cfg.box_frames else 0, progress=cfg.progress)
            free(vae, getattr(text, "pipe", None) and text.pipe.text_encoder)
    dtype = torch.bfloat16 if state.device.type == "cuda" else torch.float32
    model = V4SModel(load_wan22(wan["source"], "transformer", dtype=dtype))
    add_lora(model, cfg)
    configure_speed(model, wan["checkpointing"], wan["attention_backend"], wan["compile"])
    with oom_guard("training", est):
        return train(cfg, resume=resume, model=model, items=LatentCache(cache))


class _OnDevice:
    """A codec whose input video is moved to `device` first (the cache is written from the CPU side)."""

    def __init__(self, codec, device):
        self.codec, self.device = codec, device

    def encode(self, video):
        return self.codec.encode(video.to(self.device))


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


def _cli_memory(args):
    cfg, wan = read_wan_config(args.config)
    est, table = memory_report(cfg, wan)
    print(f"{args.config}: {est}")
    for row in table:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    return 0


def _cli_train(args):
    from .train import parse_override

    cfg, wan = read_wan_config(args.config, **dict(parse_override(s) for s in args.set))
    print(f"trained; run in {wan_train(cfg, wan, resume=args.resume)}")
    return 0

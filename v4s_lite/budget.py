"""What a Wan transformer costs before it runs (notebooks 02 and 10): tokens, FLOPs, parameters and the memory
of a LoRA training step, and which setting fits on which GPU. Plain arithmetic on a WanTransformer3DModel config.

    latent_tokens         tokens the transformer sees for a video
    transformer_flops     the FLOP count behind the benchmark's model FLOPs utilisation
    count_params, lora_params, checkpointed_blocks
    estimate_memory       what a training step needs (MemoryEstimate); fit_table: what fits where (GPUS)
    choose_checkpointing  the fewest checkpointed blocks that fit a GPU's memory (notebook 10 asks it for the GPU found)
    gpu_table             per GPU: fits?, checkpointing, seconds per step and hours for a run (MEASURED_STEP or
                          MEASURED_STEP_FP8 scaled)
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .config import WAN_LORA_TARGETS
from .utils import V4SError

TEXT_TOKENS = 512  # UMT5 sequence length in Wan pipelines (prompts are padded to it)
GiB = 2**30

# Memory a GPU offers to PyTorch (GiB) and its dense bf16 peak (TFLOP/s, datasheet, no sparsity), for fit tables,
# seconds-per-step estimates (gpu_table) and MFU. The T4 has no bf16 tensor cores (None): the bf16 5B path does not
# run there (its fp16 tensor cores would need an fp16 training path the course does not have).
# fp8: FP8 tensor cores (compute capability >= 8.9, v4s_lite.fp8.fp8_supported), what `wan.fp8_base` needs.
GPUS = {
    "T4 16 GB": dict(memory_gib=14.6, bf16_tflops=None, fp8=False),
    "L4 24 GB": dict(memory_gib=22.0, bf16_tflops=121.0, fp8=True),
    "A100 40 GB": dict(memory_gib=39.4, bf16_tflops=312.0, fp8=False),
    "A100 80 GB": dict(memory_gib=79.1, bf16_tflops=312.0, fp8=False),
    "H100 80 GB": dict(memory_gib=79.1, bf16_tflops=989.4, fp8=True),
    "H200 141 GB": dict(memory_gib=139.8, bf16_tflops=989.4, fp8=True),
}
# The training steps the course measured at its training shape (benchmarks/bench_wan.py on one H200, 2026-12-04,
# results/gpu_2026-12-04c/call2: Wan2.2-TI2V-5B, 416x256, 43 + 46 latent frames = 9,256 tokens, LoRA r32 on
# attention + FFN, batch 1, bf16; compiled blocks, fused AdamW, full gradient checkpointing). Stock diffusers (eager,
# full checkpointing) took 1.105 s and DiffSynth-Studio's DiT 1.053 s in the same run. gpu_table scales a step to
# other GPUs by their bf16 peak.
MEASURED_STEP = dict(gpu="H200 141 GB", seconds=0.805, stock_seconds=1.105, peak_gb=14.8, tokens=9256,
                     checkpointing="full", compiled=True, lora_rank=32, batch=1, fp8_base=False)
# the same with the frozen base's projections in FP8 (wan.fp8_base: v4s_lite.fp8), same run
MEASURED_STEP_FP8 = dict(MEASURED_STEP, seconds=0.724, peak_gb=10.2, fp8_base=True)


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
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in dict(config).items()))
    return _count_params(key)


@functools.lru_cache(maxsize=16)  # choose_checkpointing asks estimate_memory up to L + 1 times for one config
def _count_params(key: tuple) -> int:
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel(**_init_kwargs(dict(key)))
    return sum(p.numel() for p in model.parameters())


def projection_params(config) -> int:
    """Weights of the blocks' projections (self- and cross-attention's q, k, v, out; the FFN's two): what FP8
    quantizes (v4s_lite.fp8; 98% of Wan2.2-TI2V-5B's parameters)."""
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    return (8 * d * d + 2 * d * c["ffn_dim"]) * c["num_layers"]


def lora_params(config, rank: int, targets=WAN_LORA_TARGETS) -> int:
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
    if checkpointing == "full" or checkpointing is True:  # not `in ("full", True)`: 1 == True would mean "full"
        return list(range(num_layers))
    if checkpointing in ("none", None) or checkpointing is False or checkpointing == 0:
        return []
    if isinstance(checkpointing, str) and checkpointing.isdigit():
        checkpointing = int(checkpointing)
    if not isinstance(checkpointing, int) or not 0 <= checkpointing <= num_layers:
        raise V4SError(f"gradient checkpointing must be 'full', 'none' or a number of blocks 0..{num_layers}; "
                       f"got {checkpointing!r}")
    return sorted({round((i + 0.5) * num_layers / checkpointing - 0.5) for i in range(checkpointing)})


def estimate_memory(config, tokens: int, batch: int = 1, lora_rank: int = 32, lora_targets=WAN_LORA_TARGETS,
                    checkpointing="full", compiled: bool = False, fp8_base: bool = False,
                    keep_attention: bool = False) -> MemoryEstimate:
    """Peak GPU memory of one LoRA training step of the transformer (encoders already freed: see cache_clips).

    Weights in bf16 (2 bytes); with `fp8_base` the blocks' projections (projection_params) take 1 byte each.
    Activations: every block keeps `ACT_FFN * ffn + ACT_D * d` bytes per token for backward, a checkpointed
    block only its input (2 d bytes) plus, while it is recomputed, one block's worth. Calibrated on an H100
    (see ACT_D_EAGER); the model's own per-token modulation tensors (6 d, bf16) come on top. With
    `keep_attention` a checkpointed block also keeps its self-attention output (2 d bytes per token; the softmax
    statistics are a few bytes per head).
    """
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    layers = c["num_layers"]
    per_block = ACT_FFN * c["ffn_dim"] + (ACT_D_COMPILED if compiled else ACT_D_EAGER) * d
    n_ckpt = len(checkpointed_blocks(layers, checkpointing))
    kept = (2 + (2 if keep_attention else 0)) * d  # what a checkpointed block keeps per token (bytes)
    per_token = (layers - n_ckpt) * per_block + n_ckpt * kept + (per_block if n_ckpt else 0) + 2 * 8 * d
    return MemoryEstimate(
        weights_gib=(2 * count_params(c) - (projection_params(c) if fp8_base else 0)) / GiB,
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


def choose_checkpointing(config, tokens: int, memory_gib: float, margin: float = 0.9, **estimate_kw):
    """The fewest checkpointed blocks whose estimated peak fits `memory_gib * margin`: "none", a number n of
    blocks, or "full" (fewer checkpointed blocks = less recomputation = a faster step).

    estimate_kw: estimate_memory's settings (batch, lora_rank, lora_targets, compiled, ...). The margin leaves room
    for what the estimate does not see (fragmentation, another process). Raises V4SError when even "full" does
    not fit, saying what to change instead.
    """
    layers = dict(config)["num_layers"]
    budget_gib = memory_gib * margin
    for n in range(layers + 1):
        setting = "none" if n == 0 else "full" if n == layers else n
        if estimate_memory(config, tokens, checkpointing=setting, **estimate_kw).total_gib <= budget_gib:
            return setting
    need = estimate_memory(config, tokens, checkpointing="full", **estimate_kw).total_gib
    raise V4SError(f"even full gradient checkpointing needs about {need:.1f} GiB at {tokens} tokens, more than "
                   f"{margin:.0%} of {memory_gib:.1f} GiB. Instead: fewer context chunks (clip.context_chunks; "
                   f"each chunk is 1 latent frame of tokens), fewer target chunks, batch 1, compiled blocks "
                   f"(wan.compile: true keeps fewer activations), or a GPU with more memory (L4 24 GB and up).")


def gpu_table(config, tokens: int | None = None, steps: int = 3000, gpus=GPUS, measured: dict | None = None,
              margin: float = 0.9, fp8_base: bool = False) -> list[dict]:
    """One row per GPU for a LoRA run of `steps` steps at `tokens` tokens (default: the measured shape):

        gpu, memory_gib, bf16_tflops, estimate_gib (compiled + full checkpointing, the measured setting),
        fits (that estimate within margin x memory), checkpointing (choose_checkpointing's pick, None when nothing
        fits), seconds (per step, at the measured setting), hours (for `steps`), source ("measured" |
        "estimated" | "cannot run"), note.

    `fp8_base`: the frozen base's projections in FP8 (`wan.fp8_base`), measured as MEASURED_STEP_FP8; GPUs
    without FP8 tensor cores cannot run it. `measured` defaults to the step measured with the same fp8_base.
    The measured GPU's row carries `measured["seconds"]` itself; every other GPU's is that figure scaled by the
    ratio of bf16 peaks (a GPU with half the TFLOP/s takes twice as long: the step is matmul-bound) and, for
    another token count, by the ratio of transformer_flops. A GPU without bf16 (bf16_tflops None) cannot run the
    bf16 5B path. Estimates are what the peaks predict, not measurements: memory bandwidth and clocks differ
    (and for FP8 the ratio of FP8 peaks differs from that of bf16 peaks: the L4's FP8 is 2x its bf16).
    """
    measured = measured or (MEASURED_STEP_FP8 if fp8_base else MEASURED_STEP)
    if measured.get("fp8_base", False) != fp8_base:
        raise V4SError(f"gpu_table(fp8_base={fp8_base}) with a step measured with fp8_base="
                       f"{measured.get('fp8_base', False)}: pass the matching measurement (MEASURED_STEP_FP8 / MEASURED_STEP)")
    tokens = measured["tokens"] if tokens is None else tokens
    kw = dict(batch=measured["batch"], lora_rank=measured["lora_rank"], compiled=measured["compiled"], fp8_base=fp8_base)
    est = estimate_memory(config, tokens, checkpointing=measured["checkpointing"], **kw).total_gib
    ref_tflops = gpus[measured["gpu"]]["bf16_tflops"] if measured["gpu"] in gpus else GPUS[measured["gpu"]]["bf16_tflops"]
    work = transformer_flops(config, tokens) / transformer_flops(config, measured["tokens"])
    rows = []
    for name, spec in gpus.items():
        tflops = spec["bf16_tflops"]
        row = {"gpu": name, "memory_gib": spec["memory_gib"], "bf16_tflops": tflops, "estimate_gib": round(est, 1)}
        cannot = None
        if tflops is None:
            room = ("" if est <= spec["memory_gib"] * margin else
                    f", and {est:.1f} of its {spec['memory_gib']} GiB leaves no margin")
            cannot = (f"no bf16 tensor cores{room}: the bf16 5B path does not run; use the lite course "
                      "(notebooks 00-09) or rent an L4 / A100")
        elif fp8_base and not spec.get("fp8", False):
            cannot = "no FP8 tensor cores: train with wan.fp8_base: false (the bf16 table)"
        if cannot:
            row.update(fits=False, checkpointing=None, seconds=None, hours=None, source="cannot run", note=cannot)
            rows.append(row)
            continue
        fits = est <= spec["memory_gib"] * margin
        try:
            choice = choose_checkpointing(config, tokens, spec["memory_gib"], margin, **kw)
        except V4SError:
            choice = None
        seconds = measured["seconds"] * work * (1.0 if name == measured["gpu"] else ref_tflops / tflops)
        row.update(fits=fits, checkpointing=choice, seconds=round(seconds, 3) if fits else None,
                   hours=round(seconds * steps / 3600, 2) if fits else None,
                   source=("measured" if name == measured["gpu"] and tokens == measured["tokens"] else "estimated"),
                   note="" if fits else "does not fit even with full checkpointing: fewer context chunks")
        rows.append(row)
    return rows


def c_half(config) -> int:
    return dict(config)["num_layers"] // 2


def _init_kwargs(config) -> dict:
    from diffusers import WanTransformer3DModel
    import inspect

    allowed = inspect.signature(WanTransformer3DModel.__init__).parameters
    return {k: v for k, v in dict(config).items() if k in allowed}

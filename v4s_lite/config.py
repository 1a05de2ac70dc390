"""Clip shapes (how many frames the context, the target and the box frames have) and the training config.

The paper's numbers and the lite course's numbers are two configurations of the same code.
Every count is 1 + 4k because the Wan VAE compresses time 4x causally: the first frame is
encoded alone, then every 4 frames become one latent frame.

    paper (inference): context 1 + 84*4 = 337 frames, target 1 + 45*4 = 181 = 161 + 20 box frames
    paper (training):  context 1 + 42*4 = 169 frames  -> 43 + 46 latent frames = 9,256 tokens at 416x256
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from .utils import V4SError

TEMPORAL_STRIDE = 4  # frames per latent frame (Wan VAE); context chunks are this long
# LoRA on the attention (self + cross) and FFN projections of diffusers' WanTransformerBlock. Here, not in
# train.py, because the memory arithmetic (budget.py) prices the same list before any training code loads.
# torch.compile's modes, for TrainConfig.compile ("reduce-overhead" and "max-autotune" add CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# TrainConfig.lr_schedule -> diffusers' get_scheduler name (each with the linear warm-up of warmup_steps)
LR_SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
WAN_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
WAN22_TI2V_5B = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"  # the Hub id; a local folder with the pipeline layout works too


@dataclass(frozen=True)
class ClipConfig:
    width: int
    height: int
    scan_frames: int  # length of the recorded context scan the chunks are drawn from (1 + 4k)
    context_chunks: int  # context = first scan frame + this many 4-frame chunks
    target_chunks: int  # target = clean first frame (the paper's "+1") + this many 4-frame chunks
    box_frames: int  # the last frames of the target: camera holds still, red box drawn
    fps: int = 8

    def __post_init__(self):
        for name in ("scan_frames",):
            n = getattr(self, name)
            if (n - 1) % TEMPORAL_STRIDE:
                raise ValueError(f"{name}={n} must be 1 + 4k (the Wan VAE's causal 4x time compression)")
        if self.box_frames % TEMPORAL_STRIDE:
            raise ValueError(f"box_frames={self.box_frames} must be a multiple of 4 so boxes fill whole latents")
        if self.box_frames >= self.target_frames:
            raise ValueError(f"box_frames={self.box_frames} leaves no frames to move in ({self.target_frames} target frames)")
        if self.context_frames > self.scan_frames:
            raise ValueError(f"context needs {self.context_frames} frames but the scan has only {self.scan_frames}")

    @property
    def context_frames(self) -> int:
        return 1 + TEMPORAL_STRIDE * self.context_chunks

    @property
    def target_frames(self) -> int:
        return 1 + TEMPORAL_STRIDE * self.target_chunks

    @property
    def context_latents(self) -> int:
        return 1 + self.context_chunks

    @property
    def target_latents(self) -> int:
        return 1 + self.target_chunks

    def with_(self, **kw) -> "ClipConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


# The course's lite size keeps the paper's 416x256 aspect ratio (1.625) at a quarter of each side.
LITE = ClipConfig(width=104, height=64, scan_frames=129, context_chunks=8, target_chunks=6, box_frames=8)
# Quick mode (CPU notebooks and tests): fewer frames, same image size.
QUICK = ClipConfig(width=104, height=64, scan_frames=65, context_chunks=4, target_chunks=4, box_frames=4)
# The paper's inference setting and its training setting.
PAPER = ClipConfig(width=416, height=256, scan_frames=673, context_chunks=84, target_chunks=45, box_frames=20)
PAPER_TRAIN = PAPER.with_(context_chunks=42)

PRESETS = {"lite": LITE, "quick": QUICK, "paper": PAPER, "paper_train": PAPER_TRAIN}
# A model trained at a training shape samples at its inference shape (the paper: 169 context frames in training,
# 337 at inference); every other preset samples at the shape it was trained at.
INFERENCE_PRESET = {"paper_train": "paper"}


def get_clip_config(name_or_cfg) -> ClipConfig:
    if isinstance(name_or_cfg, ClipConfig):
        return name_or_cfg
    try:
        return PRESETS[name_or_cfg]
    except KeyError:
        raise ValueError(f"unknown clip preset {name_or_cfg!r}; choose one of {sorted(PRESETS)}") from None


def inference_clip_config(trained, override=None) -> ClipConfig:
    """The clip shape a model samples at: `override` (a preset name or ClipConfig) if given, else the inference
    shape of the shape it was trained at (INFERENCE_PRESET: paper_train -> paper), else that shape itself."""
    if override:
        return get_clip_config(override)
    return get_clip_config(INFERENCE_PRESET.get(trained, trained) if isinstance(trained, str) else trained)


# --------------------------------------------------------------------------------------------- config
@dataclass
class WanConfig:
    """How the real Wan2.2-TI2V-5B is loaded and run: the `wan:` section of a training config.

    Saved with every checkpoint (inside the TrainConfig), so a run folder says where its base model came from
    and how to rebuild its codec and text encoder for sampling."""

    source: str = WAN22_TI2V_5B  # Hub id or a local folder with the pipeline layout (transformer/, vae/, ...)
    checkpointing: object = "full"  # "full" | "none" | n blocks recomputed in backward (budget.checkpointed_blocks)
    checkpoint_keeps_attention: bool = False  # checkpointed blocks keep their attention outputs (full.configure_speed)
    compile: bool = False  # torch.compile each transformer block (regional: 30 identical blocks compile once)
    attention_backend: str | None = None  # a diffusers attention backend name; None = diffusers' default SDPA
    text_encoder: str = "umt5"  # "umt5" (the real UMT5-XXL) | "lite" (offline runs and tests, at the model's text width)
    fp8_base: bool = False  # the frozen base's matmuls in FP8 while training a LoRA (v4s_lite.fp8; L4 / H100 / H200)

    def __post_init__(self):
        if self.text_encoder not in ("umt5", "lite"):
            raise V4SError(f"wan.text_encoder={self.text_encoder!r}: choose 'umt5' or 'lite'")
        ok = self.checkpointing in ("full", "none") or (isinstance(self.checkpointing, int) and self.checkpointing >= 0)
        if not ok:
            raise V4SError(f"wan.checkpointing={self.checkpointing!r}: choose 'full', 'none' or a number of blocks")
        if self.checkpoint_keeps_attention and self.checkpointing in ("none", 0):
            raise V4SError("wan.checkpoint_keeps_attention: true changes only checkpointed blocks, and "
                           "wan.checkpointing is 'none': set a number of blocks or 'full', or leave it false")


# The factories a `wan:` section selects when model / codec / text_encoder are left at their lite defaults.
WAN_FACTORIES = {"model": "v4s_lite.full:wan_model", "codec": "v4s_lite.full:wan_vae",
                 "text_encoder": "v4s_lite.full:wan_text_encoder"}


@dataclass
class TrainConfig:
    # run
    out_dir: str = "runs/quick"
    seed: int = 0
    device: str = "auto"
    # data: clip folders written by `v4s make-data`
    data_root: str = "data/quick"
    clip: str | ClipConfig = "quick"  # a preset name, or a ClipConfig (a dict of its fields in YAML / saved runs)
    sampling: str = "noncontiguous"  # context chunks: "noncontiguous" (the paper) or "contiguous" (ablation)
    box_frames: bool = True  # draw the red box on the target's last frames (off: the ablation)
    context_views: int = 1  # context samplings pre-encoded per clip (each a different set of chunks)
    max_clips: int = 0  # 0 = all clips in data_root
    num_workers: int = 0  # processes decoding + encoding clips in encode_clips (0 = this process)
    latent_cache: str = ""  # a folder: encode_clips saves its result there once; later runs and resumes load it
    batch_workers: int = 0  # processes building the next noised batches while the model trains (0 = this process)
    # "auto" = on a GPU: every encoded clip resident on the device and each step's batch drawn there
    # (DeviceBatches; no host round trip or per-sample Python per step); True / False force it
    device_batches: object = "auto"
    # model: a v4s_lite.model.transformer_config name, or "package.module:function" returning a V4SModel
    model: str = "tiny"
    model_overrides: dict = field(default_factory=dict)  # changes to the preset, e.g. {num_layers: 2}
    init_from: str = ""  # a folder with transformer/ (save_pretrained) to start from
    context_attention: str = "full"  # "full" (the paper) | "context_only" (context attends to context: reusable k/v)
    # where the target sits on RoPE's time axis (rope.py): "after_context" (gap after the last sampled chunk) or
    # "after_scan" (a fixed start after the scan's last chunk slot: context length changes only the context)
    rope_target: str = "after_context"
    codec: str = "lite"  # "lite" | "package.module:function" (e.g. one returning a WanVAECodec)
    text_encoder: str = "lite"  # "lite" | "package.module:function" (e.g. one returning a UMT5TextEncoder)
    lora_rank: int = 0  # 0 = train every weight (the lite model); > 0 = peft LoRA (the big model)
    lora_alpha: float = 0.0  # 0 = same as the rank
    lora_targets: list = field(default_factory=lambda: list(WAN_LORA_TARGETS))
    gradient_checkpointing: bool = False
    # torch.compile the model: "auto" = on a GPU (with CUDA graphs in one process: train.compile_choice), true =
    # always, or one of torch.compile's modes (COMPILE_MODES; "reduce-overhead" adds CUDA graphs: one launch per
    # graph instead of one per kernel). Falls back to eager if compiling fails.
    compile: object = "auto"
    # flow matching
    flow_shift: float = 3.0  # Wan2.2's shift
    weighting_scheme: str = "none"  # diffusers' compute_density_for_timestep_sampling: none | logit_normal | mode
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    # condition dropout (cfg.drop_conditions): rates of dropping the instruction, the context, both
    p_drop_text: float = 0.1
    p_drop_context: float = 0.1
    p_drop_both: float = 0.1
    # optimisation
    steps: int = 100
    batch_size: int = 2  # global, per optimizer step: split evenly across processes and accumulation micro-steps
    # micro-steps per optimizer step: each process runs batch_size / (processes * grad_accum_steps) samples at a time
    # and the gradients add up to the global batch's (same update as one big batch; less activation memory)
    grad_accum_steps: int = 1
    # several processes: "ddp" (a whole replica per GPU, gradients all-reduced) or "fsdp" (FSDP2 through accelerate:
    # weights, gradients and optimizer states sharded per transformer block; full fine-tuning on GPUs only)
    parallel: str = "ddp"
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    warmup_steps: int = 10
    # the learning rate after the warm-up (diffusers' get_scheduler): "constant" holds lr; "linear" and "cosine"
    # decay it to 0 at `steps` (a cool-down: the last steps at a falling rate settle the weights that a constant rate
    # keeps shaking; --resume continues the same curve, a warm start (init_from) begins a new one)
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # 0 = no EMA
    mixed_precision: str = "auto"  # auto = bf16 on GPU, fp32 ("no") on CPU
    # logging and checkpoints
    log_every: int = 1
    log_with: str = ""  # "" = loss.jsonl only; "tensorboard" = also run_dir/tensorboard/ (pip install tensorboard)
    checkpoint_every: int = 50
    keep_checkpoints: int = 0  # 0 = keep every checkpoint; K = only the last K (plus keep_steps) stay on disk
    keep_steps: list = field(default_factory=list)  # checkpoints never rotated away, e.g. [1000, 2000]
    # validation videos: every validate_every steps (0 = off), one short video per clip folder in validation_clips
    # under run_dir/validation/step_XXXXXX/ (EMA weights when on), sampled with validation_steps solver steps;
    # with >= 2 clips also the condition gaps on them, in run_dir/validation.jsonl (sample.validation_hook)
    validate_every: int = 0
    validation_clips: list = field(default_factory=list)
    validation_steps: int = 10
    # torch.profiler over profile_steps steps after profile_after more of this run (0 = off; main process; e.g. 3
    # after 10 records steps 11-13, step 10 tracing as its warm-up): run_dir/profile/
    # gets trace.json (Perfetto, chrome://tracing) and summary.txt: wall and GPU-busy time per step, the longest GPU
    # idle gaps named by the host operation inside each, the kernels taking most time (profiling.py)
    profile_steps: int = 0
    profile_after: int = 10
    explode_factor: float = 100.0  # stop when the loss exceeds this x the median of the last 50 losses
    progress: bool = True
    # the real Wan2.2-TI2V-5B (notebook 10): a WanConfig (a dict in YAML: the `wan:` section), None for the lite model
    wan: WanConfig | None = None

    def __post_init__(self):
        if self.sampling not in ("noncontiguous", "contiguous"):
            raise V4SError(f"sampling={self.sampling!r}: choose 'noncontiguous' or 'contiguous'")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise V4SError("steps, batch_size and checkpoint_every must be >= 1")
        if not 0 <= self.p_drop_text + self.p_drop_context + self.p_drop_both <= 1:
            raise V4SError("p_drop_text + p_drop_context + p_drop_both must lie in [0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise V4SError(f"lr_schedule={self.lr_schedule!r}: choose one of {sorted(LR_SCHEDULES)}")
        if self.lr_schedule != "constant" and self.warmup_steps >= self.steps:
            raise V4SError(f"lr_schedule={self.lr_schedule!r} decays the rate to 0 at steps={self.steps}, but the warm-up "
                           f"takes warmup_steps={self.warmup_steps}: set warmup_steps below steps")
        if self.rope_target not in ("after_context", "after_scan"):
            raise V4SError(f"rope_target={self.rope_target!r}: choose 'after_context' or 'after_scan' (rope.py)")
        if self.flow_shift <= 0:
            raise V4SError(f"flow_shift={self.flow_shift} must be > 0 (1 = no shift, Wan uses 3-5)")
        if isinstance(self.clip, dict):  # a custom ClipConfig after asdict (trainer_state.json, config.yaml)
            try:
                self.clip = ClipConfig(**self.clip)
            except (TypeError, ValueError) as e:
                raise V4SError(f"clip={self.clip}: {e}; give a preset name {sorted(PRESETS)} or ClipConfig's fields "
                               f"{[f.name for f in dataclasses.fields(ClipConfig)]}") from None
        try:
            get_clip_config(self.clip)
        except (TypeError, ValueError) as e:
            raise V4SError(str(e)) from None
        if self.mixed_precision is False:  # YAML reads a bare `no` (mixed_precision: no, --set mixed_precision=no) as false
            self.mixed_precision = "no"
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise V4SError(f"mixed_precision={self.mixed_precision!r}: choose auto, no, bf16 or fp16")
        if self.device_batches not in ("auto", True, False):
            raise V4SError(f"device_batches={self.device_batches!r}: choose auto, true or false")
        if self.compile not in ("auto", True, False, *COMPILE_MODES):
            raise V4SError(f"compile={self.compile!r}: choose auto, true, false or a torch.compile mode "
                           f"({', '.join(COMPILE_MODES)})")
        self._check_trainer_options()
        if isinstance(self.wan, dict):  # the `wan:` section of a YAML file or a saved run
            known = [f.name for f in dataclasses.fields(WanConfig)]
            unknown = sorted(set(self.wan) - set(known))
            if unknown:
                raise V4SError(f"unknown `wan:` option(s) {unknown}; known: {known}")
            self.wan = WanConfig(**self.wan)
        if self.wan is not None:
            self._check_wan()

    def _check_wan(self):
        """A `wan:` run loads everything from wan.source: the factories fill in, conflicting settings are refused."""
        defaults = {"model": "tiny", "codec": "lite", "text_encoder": "lite"}
        for key, factory in WAN_FACTORIES.items():
            if getattr(self, key) == defaults[key]:
                setattr(self, key, factory)
        if self.init_from:
            raise V4SError(f"init_from={self.init_from!r} with a `wan:` section: the base model comes from wan.source; "
                           "set wan.source to the Hub id or local folder and remove init_from")
        if self.compile is True or self.compile in COMPILE_MODES:
            raise V4SError(f"compile={self.compile} with a `wan:` section: Wan2.2 compiles block by block, set wan.compile: true")
        if self.device_batches is True:
            raise V4SError("device_batches=true with a `wan:` section: 5B clips are read from the latent cache "
                           "on disk, a batch at a time; remove device_batches")

    def _check_parallel(self):
        """FSDP is built for full fine-tuning on GPUs; what it cannot do yet is refused, not silently wrong."""
        if self.parallel not in ("ddp", "fsdp"):
            raise V4SError(f"parallel={self.parallel!r}: choose 'ddp' (a replica per process) or 'fsdp' (FSDP2, "
                           "sharded weights, full fine-tuning on GPUs)")
        if self.parallel != "fsdp":
            return
        refused = {"device": (self.device == "cpu", "accelerate runs FSDP on GPUs only (on CPU it would silently "
                                                    "run DDP); use parallel=ddp"),
                   "lora_rank": (self.lora_rank > 0, "LoRA replicas are small, DDP fits them; use parallel=ddp"),
                   "ema_decay": (self.ema_decay > 0, "the EMA copy of sharded weights is not gathered for "
                                                      "checkpoints yet; set ema_decay=0"),
                   "validate_every": (self.validate_every > 0, "validation samples on the main process only, "
                                                              "with sharded weights; set validate_every=0")}
        for name, (bad, why) in refused.items():
            if bad:
                raise V4SError(f"parallel=fsdp with {name}={getattr(self, name)!r}: {why}")

    def _check_trainer_options(self):
        """Accumulation, logging, checkpoint rotation and validation settings (each bad value says what to give)."""
        if not isinstance(self.grad_accum_steps, int) or self.grad_accum_steps < 1:
            raise V4SError(f"grad_accum_steps={self.grad_accum_steps!r} must be an integer >= 1 (1 = no accumulation)")
        if self.batch_size % self.grad_accum_steps:
            raise V4SError(f"batch_size={self.batch_size} must be a multiple of grad_accum_steps="
                           f"{self.grad_accum_steps}: batch_size is the global batch of one optimizer step, and each "
                           "micro-step takes an equal share of it")
        self._check_parallel()
        for name in ("profile_steps", "profile_after"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise V4SError(f"{name}={getattr(self, name)!r} must be an integer >= 0")
        if self.profile_steps and self.profile_after < 1:
            raise V4SError(f"profile_after={self.profile_after}: the profiler traces one warm-up step before those it "
                           "records (and the first steps compile); give profile_after >= 1")
        if self.profile_steps and self.profile_after + self.profile_steps > self.steps:
            raise V4SError(f"profile_after={self.profile_after} + profile_steps={self.profile_steps} exceeds "
                           f"steps={self.steps}: the profile would never finish; lower them or raise steps")
        if self.log_with not in ("", "tensorboard"):
            raise V4SError(f"log_with={self.log_with!r}: choose '' (loss.jsonl only) or 'tensorboard'")
        if not isinstance(self.keep_checkpoints, int) or self.keep_checkpoints < 0:
            raise V4SError(f"keep_checkpoints={self.keep_checkpoints!r} must be 0 (keep all) or the number of latest "
                           "checkpoints to keep")
        if not isinstance(self.keep_steps, (list, tuple)) or not all(isinstance(s, int) and s >= 1
                                                                     for s in self.keep_steps):
            raise V4SError(f"keep_steps={self.keep_steps!r} must be a list of steps >= 1, e.g. [1000, 2000]")
        if self.keep_steps and not self.keep_checkpoints:
            raise V4SError(f"keep_steps={self.keep_steps} only matters with keep_checkpoints > 0 (0 keeps every "
                           "checkpoint already): set keep_checkpoints or drop keep_steps")
        if not all(s % self.checkpoint_every == 0 or s == self.steps for s in self.keep_steps):
            raise V4SError(f"keep_steps={self.keep_steps}: checkpoints are written every checkpoint_every="
                           f"{self.checkpoint_every} steps (and at steps={self.steps}); list steps that get one")
        if not isinstance(self.validate_every, int) or self.validate_every < 0:
            raise V4SError(f"validate_every={self.validate_every!r} must be 0 (off) or a number of steps")
        if not isinstance(self.validation_clips, (list, tuple)) or not all(isinstance(c, str)
                                                                          for c in self.validation_clips):
            raise V4SError(f"validation_clips={self.validation_clips!r} must be a list of clip folders")
        if self.validate_every and not self.validation_clips:
            raise V4SError(f"validate_every={self.validate_every} but validation_clips is empty: list clip folders "
                           "to generate from, e.g. validation_clips: [data/quick/grounding_000000]")
        if self.validation_clips and not self.validate_every:
            raise V4SError(f"validation_clips are set but validate_every=0 (off): set validate_every, e.g. "
                           f"{self.checkpoint_every}, or drop validation_clips")
        if not isinstance(self.validation_steps, int) or self.validation_steps < 1:
            raise V4SError(f"validation_steps={self.validation_steps!r} must be >= 1 (sampler steps per video)")

    @property
    def clip_config(self) -> ClipConfig:
        return get_clip_config(self.clip)

    @property
    def clip_name(self) -> str:
        """The preset's name, or "custom" for a ClipConfig (folder names, messages)."""
        return self.clip if isinstance(self.clip, str) else "custom"


def load_config(path=None, **overrides) -> TrainConfig:
    """A TrainConfig from a YAML file (keys = field names), then keyword overrides."""
    data = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise V4SError(f"config {path} does not exist; the course's configs are in configs/ (quick.yaml, lite.yaml)")
        data = yaml.safe_load(path.read_text()) or {}
    for key, value in overrides.items():  # "wan.checkpointing=full" sets one field of the `wan:` section
        if key.startswith("wan."):
            wan = data.get("wan") or {}
            data["wan"] = {**(asdict(wan) if isinstance(wan, WanConfig) else wan), key[4:]: value}
        else:
            data[key] = value
    return config_from_dict(data, path or "overrides")


def config_from_dict(data: dict, where="a config") -> TrainConfig:
    """The TrainConfig of a dict of its fields (YAML, a saved run's asdict): the one reader of both, so an option
    this version does not know is named with the file it came from (not a TypeError from TrainConfig(**data))."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise V4SError(f"unknown training option(s) {unknown} in {where}; remove or rename them (a run saved by "
                       f"another version of v4s_lite?); known: {sorted(known)}")
    return TrainConfig(**data)


def parse_override(text: str) -> tuple[str, object]:
    """'key=value' from the command line; the value is read as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise V4SError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)

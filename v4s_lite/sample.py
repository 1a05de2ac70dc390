"""Sampling: denoise the target latents with a diffusers flow-matching scheduler and joint CFG (notebook 06).

    x ~ N(0, I) at sigma = 1;  for each step: v = joint_cfg(model, x, t, ...);  x = scheduler.step(v, t, x)

The model predicts the flow velocity v = noise - x0 (train.py), which is what diffusers' flow-matching
schedulers take: FlowMatchEulerDiscreteScheduler (x <- x + (sigma_next - sigma) v) and
UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True) (Wan's default solver).
The context latents and the target's first latent stay clean throughout; only the noisy latents move.

    v4s sample runs/quick/step_000150 --clip data/quick/grounding_000000 --out samples/ --guidance joint --scale 5

writes per try an mp4 (context | generated frames with the detected box drawn in yellow) and a JSON with the
detected red box per frame.

Layers of this module, lowest first: `generate` (latents in, latents out), `sample_clip` (a ClipDataset item in,
decoded frames and detected boxes out; the item is encoded by the one clip encoder, latents.encode_clip), and
`V4SPipeline` (a run folder in: the one entrance for "a video from a run", used by `v4s sample`, `v4s eval
--checkpoint`, the tables and the notebooks).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .cfg import MODES, joint_cfg
from .fp8 import fp8_base
from .utils import V4SError, get_device

# Short names for the two solvers the course uses; any other diffusers scheduler class name works too.
SCHEDULERS = ("euler", "unipc")


def make_scheduler(name: str = "unipc", shift: float = 3.0, **kwargs):
    """A diffusers flow-matching scheduler: "euler", "unipc", or a diffusers class name (+ its kwargs)."""
    import diffusers

    if name == "euler":
        return diffusers.FlowMatchEulerDiscreteScheduler(shift=shift, **kwargs)
    if name == "unipc":
        return diffusers.UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                 flow_shift=shift, **kwargs)
    cls = getattr(diffusers, name, None)
    if cls is None or not name.endswith("Scheduler"):
        raise V4SError(f"scheduler {name!r}: use 'euler', 'unipc' or a diffusers scheduler class name, "
                       "e.g. FlowMatchEulerDiscreteScheduler")
    scheduler = cls(**kwargs)
    flow = "FlowMatch" in name or getattr(scheduler.config, "prediction_type", None) == "flow_prediction"
    if not flow:
        raise V4SError(f"{name} is not set up for flow matching: the model predicts a flow velocity. Pass "
                       "prediction_type='flow_prediction' (and use_flow_sigmas=True) or use a FlowMatch scheduler")
    return scheduler


DEFAULT_SHIFT = 3.0  # the flow shift of a model without a run config (a saved model folder); Wan2.2 runs use 5


@dataclass(frozen=True)
class SamplingSettings:
    """How a target video is sampled: the one definition behind generate()'s defaults, the flags of `v4s sample`
    and `v4s eval --checkpoint` (add_arguments) and the tables, so no default is written twice.

    shift=None means "the schedule the run trained on" (for_run: its flow_shift, DEFAULT_SHIFT without a run)."""

    scheduler: str = "unipc"  # "euler" | "unipc" | a diffusers flow-matching scheduler class name
    steps: int = 20
    shift: float | None = None
    guidance: str = "joint"  # cfg.MODES: none | text | joint | three
    scale: float = 5.0
    text_scale: float | None = None  # guidance="three" only: the instruction's scale
    context_scale: float | None = None  # guidance="three" only: the context's scale

    def __post_init__(self):
        # messages name the command-line flag: most settings arrive from one
        if not isinstance(self.steps, int) or self.steps < 1:
            raise V4SError(f"--steps {self.steps}: the number of solver steps must be an integer >= 1 (default 20)")
        if self.guidance not in MODES:
            raise V4SError(f"--guidance {self.guidance}: unknown guidance mode; choose one of {list(MODES)}")
        if self.guidance != "three" and (self.text_scale is not None or self.context_scale is not None):
            raise V4SError(f"--text-scale / --context-scale weigh the two conditions of --guidance three only; "
                           f"with --guidance {self.guidance} use --scale")
        if self.shift is not None and not self.shift > 0:
            raise V4SError(f"--shift {self.shift}: the flow shift must be > 0 (1 = no shift, Wan uses 3-5), or left "
                           "out for the run's flow_shift")

    @classmethod
    def add_arguments(cls, parser) -> None:
        """The settings as command-line flags (--scheduler, --steps, ...) on an argparse parser or group."""
        d = cls()
        parser.add_argument("--scheduler", default=d.scheduler,
                            help=f"euler | unipc | a diffusers scheduler class name (default {d.scheduler})")
        parser.add_argument("--steps", type=int, default=d.steps, help=f"solver steps (default {d.steps})")
        parser.add_argument("--shift", type=float, default=d.shift,
                            help=f"flow shift of the sampling schedule (default: the run's flow_shift; "
                                 f"{DEFAULT_SHIFT} for a model folder)")
        parser.add_argument("--guidance", default=d.guidance, choices=list(MODES), help=f"(default {d.guidance})")
        parser.add_argument("--scale", type=float, default=d.scale, help=f"guidance scale (default {d.scale})")
        parser.add_argument("--text-scale", type=float, default=d.text_scale,
                            help="guidance three: the instruction's scale")
        parser.add_argument("--context-scale", type=float, default=d.context_scale,
                            help="guidance three: the context's scale")

    @classmethod
    def from_args(cls, args) -> "SamplingSettings":
        """The settings parsed by add_arguments, checked before any model loads (the scheduler too: it is built
        once here, so a wrong name fails now rather than after the checkpoint and the clips are loaded)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)}).checked()

    def checked(self) -> "SamplingSettings":
        """These settings, once the scheduler they name has been built (a wrong name fails here, before any model
        or clip is loaded)."""
        make_scheduler(self.scheduler, self.shift or DEFAULT_SHIFT)
        return self

    def for_run(self, cfg) -> "SamplingSettings":
        """shift=None resolved: the run's flow_shift (TrainConfig), DEFAULT_SHIFT for a model without one."""
        if self.shift is not None:
            return self
        return replace(self, shift=cfg.flow_shift if cfg is not None else DEFAULT_SHIFT)

    def generate_kwargs(self) -> dict:
        """generate()'s keyword arguments (shift resolved to DEFAULT_SHIFT if still None)."""
        return asdict(self.for_run(None))


_DEFAULTS = SamplingSettings()  # generate()'s keyword defaults below are these


@torch.no_grad()
def generate(model, context_latents, first_latent, text_emb, null_text_emb, context_positions, n_noisy: int, *,
             scheduler=_DEFAULTS.scheduler, steps: int = _DEFAULTS.steps, shift: float = DEFAULT_SHIFT,
             guidance: str = _DEFAULTS.guidance, scale: float = _DEFAULTS.scale,
             text_scale: float | None = _DEFAULTS.text_scale, context_scale: float | None = _DEFAULTS.context_scale,
             seed: int = 0,
             callback=None, reuse_context: bool = True) -> torch.Tensor:
    """Sample the target latents (B, C, 1 + n_noisy, h, w): the clean first latent, then n_noisy generated.

    scheduler: a name for make_scheduler or a diffusers scheduler instance (copied: solvers keep state).
    The starting noise and the null context of joint CFG come from `seed`: same seed, same video.
    callback(i, t, latents) is called after each step (notebook 06 shows the trajectory).
    reuse_context: a model trained with context_attention="context_only" computes the context's keys/values
    once per video (V4SModel.reuse_context); False runs the whole sequence at every step (the reference).
    """
    if steps < 1:
        raise V4SError(f"steps={steps} must be >= 1")
    sched = make_scheduler(scheduler, shift) if isinstance(scheduler, str) else copy.deepcopy(scheduler)
    device = first_latent.device
    b, c, _, h, w = first_latent.shape
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn((b, c, n_noisy, h, w), generator=g).to(device)
    # one Gaussian stand-in for the context over the whole run, as in training's dropped context
    noise_context = torch.randn(context_latents.shape, generator=g).to(device, context_latents.dtype)
    sched.set_timesteps(steps, device=device)
    reuse = reuse_context and getattr(model, "context_attention", "full") == "context_only"
    with model.reuse_context() if reuse else nullcontext():
        for i, t in enumerate(sched.timesteps):
            v = joint_cfg(model, latents, t, context_latents=context_latents, first_latent=first_latent,
                          text_emb=text_emb, null_text_emb=null_text_emb, context_positions=context_positions,
                          mode=guidance, scale=scale, text_scale=text_scale, context_scale=context_scale,
                          noise_context=noise_context)
            latents = sched.step(v.float(), t, latents.float(), return_dict=False)[0]
            if callback is not None:
                callback(i, t, latents)
    return torch.cat([first_latent.float(), latents], dim=2)


# ------------------------------------------------------------------------------------ where the model looks
def item_inputs(item: dict, null_text_emb, device="cpu") -> dict:
    """An encoded item (`latents.encode_clips`) -> generate()'s conditions on `device`, a batch of one: its context
    latents, its clean first target latent, its instruction and the null one, its context positions
    (`sampling_inputs` does the same from a clip folder's ClipDataset item)."""
    return dict(context_latents=item["context_latents"][None].to(device),
                first_latent=item["target_latents"][None, :, :1].to(device),
                text_emb=item["prompt_embeds"][None].to(device), null_text_emb=null_text_emb[None].to(device),
                context_positions=torch.as_tensor(item["context_positions"]).tolist())


def context_chunk_frames(frame_indices) -> list[np.ndarray]:
    """The scan frames behind each context latent frame: the scan's frame 0 alone, then one chunk of 4 consecutive
    frames per latent frame (the VAE's 1 + 4k frames; notebook 01's non-contiguous chunks)."""
    idx = np.asarray(frame_indices)
    if len(idx) < 1 or (len(idx) - 1) % 4:
        raise V4SError(f"{len(idx)} context frames: expected 1 + 4k (the scan's frame 0, then chunks of 4)")
    return [idx[:1]] + [idx[1 + 4 * k: 5 + 4 * k] for k in range((len(idx) - 1) // 4)]


def where_it_looks(model, item: dict, null_text_emb, *, steps: int = 4, device="cpu", **generate_kw):
    """Where a model's final frames look while it generates one item (notebook 06): each context latent frame's
    share of the last latent frame's attention to the context, and the context's share of all its attention.

    The attention of the conditional pass of joint CFG (batch 0), averaged over heads, layers and `steps`
    denoising steps (`attention.AttentionCapture`). item: an encoded item (`latents.encode_clips`).
    generate_kw: generate()'s settings (guidance, scale, scheduler, seed). Returns ((n_context_frames,) shares
    summing to 1, the context's share)."""
    from .attention import AttentionCapture

    n_ctx = item["context_latents"].shape[1]
    with AttentionCapture(model, query_frames=[-1]) as cap:
        generate(model, **item_inputs(item, null_text_emb, device), n_noisy=item["target_latents"].shape[1] - 1,
                 steps=steps, reuse_context=False, **generate_kw)
    mass = cap.frame_mass(batch=0)
    return (mass[:n_ctx] / mass[:n_ctx].sum()).numpy(), float(mass[:n_ctx].sum())


# ------------------------------------------------------------------------------------ whole clips
DETECTED_COLOR = (255, 255, 0)  # yellow: the detector's reading, drawn beside (not over) the model's red box


@dataclass
class Sample:
    """One try: the generated target frames and what the red-box detector read from them."""

    seed: int
    frames: np.ndarray  # uint8 (Ft, H, W, 3): the decoded clean first frame + the generated frames
    boxes: np.ndarray  # (Ft, 4) detected red box per frame, NaN where none
    confidence: np.ndarray  # (Ft,)
    latents: torch.Tensor = field(repr=False, default=None)

    def final_box(self, n_box_frames: int) -> np.ndarray:
        """The answer: the median detected box over the box frames (NaN if none was found)."""
        b = self.boxes[-n_box_frames:]
        b = b[~np.isnan(b).any(1)]
        return np.median(b, axis=0) if len(b) else np.full(4, np.nan)


def sampling_inputs(example: dict, codec, text_encoder, device="cpu") -> dict:
    """A ClipDataset item -> generate()'s conditions on `device`: `context_latents` (1, C, Fc, h, w),
    `first_latent` (1, C, 1, h, w), `text_emb` / `null_text_emb` (1, L, D), `context_positions` (a list).
    The latents come from the one clip encoder (latents.encode_clip, first target frame only)."""
    from .latents import encode_clip

    enc = encode_clip(example, codec, text_encoder, first_only=True, device=device)
    with torch.no_grad():
        null = text_encoder.encode([""]).to(device)
    return {"context_latents": enc["context_latents"][None].to(device),
            "first_latent": enc["target_latents"][None].to(device),
            "text_emb": enc["prompt_embeds"][None].to(device), "null_text_emb": null,
            "context_positions": enc["context_positions"].tolist()}


def sample_clip(model, codec, text_encoder, example: dict, clip_cfg, *, tries: int = 1, seed: int = 0,
                device="cpu", drop_context: bool = False, **generate_kw) -> list[Sample]:
    """Generate `tries` target videos for one clip (seeds seed, seed + 1, ...) and read their red boxes.
    drop_context: replace the context latents by Gaussian noise (seeded by `seed`), as training does when it drops
    the context: the "first frame only" input the model was trained on."""
    from .bbox import detect_red_box
    from .codec import video_to_frames

    if tries < 1:
        raise V4SError(f"tries={tries} must be >= 1")
    enc = sampling_inputs(example, codec, text_encoder, device)
    if drop_context:
        g = torch.Generator().manual_seed(seed + 104729)  # not the starting noise's stream
        enc["context_latents"] = torch.randn(enc["context_latents"].shape, generator=g).to(enc["context_latents"])
    out = []
    for k in range(tries):
        lat = generate(model, enc["context_latents"], enc["first_latent"], enc["text_emb"], enc["null_text_emb"],
                       enc["context_positions"], clip_cfg.target_latents - 1, seed=seed + k, **generate_kw)
        frames = video_to_frames(codec.decode(lat))[0]
        boxes, conf = detect_red_box(frames)
        out.append(Sample(seed + k, frames, boxes, conf, lat.cpu()))
    return out


def video_with_boxes(context: np.ndarray, sample: Sample) -> np.ndarray:
    """The frames of the output mp4: the context, then the generated frames with the detected box in yellow."""
    from .bbox import draw_box

    gen = sample.frames.copy()
    for frame, box in zip(gen, sample.boxes):
        if not np.isnan(box).any():
            draw_box(frame, box + np.array([-1, -1, 1, 1]), 1, DETECTED_COLOR)  # just outside the red line
    return np.concatenate([np.asarray(context), gen])


def write_sample(out_dir, name: str, context: np.ndarray, sample: Sample, n_box_frames: int, fps: int = 8,
                 extra: dict | None = None) -> tuple[Path, Path]:
    """`name.mp4` (context | generated + detected box) and `name.json` (the detected box per frame)."""
    from .video import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4 = write_video(out_dir / f"{name}.mp4", video_with_boxes(context, sample), fps)
    final = sample.final_box(n_box_frames)
    info = {"seed": sample.seed, "context_frames": int(len(context)), "generated_frames": int(len(sample.frames)),
            "box_frames": n_box_frames,
            "final_box": None if np.isnan(final).any() else [round(float(v), 2) for v in final],
            "frames": [{"frame": i, "box": None if np.isnan(b).any() else [round(float(v), 2) for v in b],
                        "confidence": round(float(c), 4)}
                       for i, (b, c) in enumerate(zip(sample.boxes, sample.confidence))]}
    info.update(extra or {})
    js = out_dir / f"{name}.json"
    js.write_text(json.dumps(info, indent=1))
    return Path(mp4), js


def load_example(folder, clip_cfg, sampling: str = "noncontiguous", seed: int = 0) -> dict:
    """The ClipDataset item of one clip folder (its context chunks drawn as its dataset would draw them)."""
    from .data import ClipDataset

    folder = Path(folder).resolve()
    if not (folder / "meta.json").exists():
        raise V4SError(f"{folder} is not a clip folder (no meta.json); make clips with `v4s make-data`")
    ds = ClipDataset(folder.parent, clip_cfg, sampling=sampling, seed=seed)
    return ds[[f.resolve() for f in ds.folders].index(folder)]


def compile_by_default(cfg, device, fp8: bool = False) -> bool:
    """Whether sampling compiles the transformer blocks when not told: on a GPU, for a run trained compiled
    (`wan.compile`) or sampled in FP8, whose activation quantisation only pays once fused by the compiler.
    Measured on an H200 (results/bench_wan_h200.md, the 5B's guided step at 9,256 tokens): 0.602 s eager,
    0.449 s compiled; FP8 0.834 s eager, 0.383 s compiled. Never on a CPU (compiling costs more than it saves)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    wan = getattr(cfg, "wan", None)
    return bool(fp8 or (wan is not None and wan.compile))


def _marks_target(path, cfg) -> bool:
    """Whether the model at `path` was trained with box frames: its run config, else an export's v4s_export.json
    (`v4s export` records it), else True (a plain saved model, e.g. data/v4s-lite: trained with them)."""
    from .checkpoints import export_info

    if cfg is not None:
        return bool(cfg.box_frames)
    flag = (export_info(path) or {}).get("box_frames")
    return True if flag is None else bool(flag)


class V4SPipeline:
    """A video from a run, the one entrance (`v4s sample`, `v4s eval --checkpoint`, the tables, tools, notebooks):

        pipe = V4SPipeline.from_pretrained("runs/lite/step_003000", device="cuda")
        samples = pipe(pipe.load_example("data/lite/val/grounding_000000"), SamplingSettings(scale=5), tries=3)
        samples[0].frames, samples[0].boxes            # uint8 (Ft, H, W, 3), the detected red box per frame

    In diffusers' style (`WanPipeline.from_pretrained(...)(prompt, ...)`): the components (model, codec, text
    encoder), the run's config and the clip shape are built once from a run folder by `checkpoints.load_model` (the
    run folder's one reader) and `config.inference_clip_config`; `__call__` takes one example and the sampling
    settings. Underneath is sample_clip (encode with latents.encode_clip, generate, decode, read the boxes), the
    lower-level path notebooks 05-07 teach.

    A plain class, not a `diffusers.DiffusionPipeline` subclass: DiffusionPipeline's `from_pretrained` /
    `save_pretrained` read and write a `model_index.json` folder of registered diffusers/transformers modules,
    while ours come from a training run folder (`trainer_state.json` + `transformer/` or a LoRA file, codecs built
    from the run's config) and the lite codec and text encoder are not modules it can register or save. The
    scheduler is not a component either: it is built per call from `SamplingSettings` (a solver keeps state, and
    the settings are what a user varies).
    """

    def __init__(self, model, codec, text_encoder, clip_config, config=None, device="cpu", marks_target: bool = True):
        self.model, self.codec, self.text_encoder = model, codec, text_encoder
        self.clip_config, self.config, self.device = clip_config, config, get_device(str(device))
        # trained with box frames, so its videos end marking the target (False: the box ablation's model); the judge
        # asks a box only of a model that draws one (evaluate.score_clip(marked=))
        self.marks_target = marks_target

    @classmethod
    def from_pretrained(cls, path, device="auto", ema: bool = True, clip_config=None, fp8: bool = False,
                        compile: bool | None = None) -> "V4SPipeline":
        """A training checkpoint step_XXXXXX/ (full or LoRA, EMA weights by default), an exported or a plain saved
        V4SModel folder (lite codecs). clip_config: the shape to sample at (a preset name or ClipConfig; default
        the run's inference shape: a paper_train run samples at paper, a plain model folder at lite).
        fp8: the transformer blocks' projections multiply in FP8 (v4s_lite.fp8; GPUs of compute capability >= 8.9;
        ~3% error per product, so the videos differ a little from bf16 ones).
        compile: torch.compile the transformer blocks (diffusers' regional compilation: the blocks are identical,
        so one compilation serves all). None = on a GPU for a run trained with `wan.compile` or with fp8 (see
        `compile_by_default`); the first denoising step then waits for the compiler."""
        from .checkpoints import load_model
        from .config import inference_clip_config

        device = get_device(str(device))
        model, codec, text_encoder, cfg = load_model(path, ema=ema, device=device)
        if fp8:
            model.requires_grad_(False)
            fp8_base(model, device=device)
        if compile is None:
            compile = compile_by_default(cfg, device, fp8)
        if compile:
            model.transformer.compile_repeated_blocks(fullgraph=False)
        elif fp8 and device.type == "cuda":
            print("note: FP8 without compile is slower than bf16 (an H200's guided step: 0.83 s eager FP8, 0.60 s "
                  "bf16, 0.38 s compiled FP8; results/bench_wan_h200.md): drop --no-compile")
        clip_cfg = inference_clip_config(cfg.clip if cfg is not None else "lite", clip_config)
        return cls(model, codec, text_encoder, clip_cfg, cfg, device, marks_target=_marks_target(path, cfg))

    def load_example(self, folder, sampling: str = "noncontiguous", seed: int = 0) -> dict:
        """One clip folder's ClipDataset item at this pipeline's clip shape (its context chunks drawn as its dataset
        would draw them with `seed`)."""
        return load_example(folder, self.clip_config, sampling, seed)

    def __call__(self, example: dict, settings: SamplingSettings | None = None, tries: int = 1, seed: int = 0,
                 drop_context: bool = False) -> list:
        """`tries` target videos for one ClipDataset item (seeds seed, seed + 1, ...) -> list of `sample.Sample`
        (`frames` uint8 (Ft, H, W, 3), `boxes` (Ft, 4) the detected red box, NaN where none, `confidence`,
        `latents`). settings: SamplingSettings (default its defaults; shift None = the run's flow_shift).
        drop_context: Gaussian noise for the context, as training drops it (the "first frame only" input)."""
        if not isinstance(example, dict):
            raise V4SError(f"the pipeline takes a ClipDataset item, got {type(example).__name__}; for a clip folder "
                           "use pipe(pipe.load_example(folder), ...)")
        settings = settings if settings is not None else SamplingSettings()
        if not isinstance(settings, SamplingSettings):
            raise V4SError(f"settings must be a sample.SamplingSettings, got {type(settings).__name__}; e.g. "
                           "SamplingSettings(guidance='joint', scale=5)")
        return sample_clip(self.model, self.codec, self.text_encoder, example, self.clip_config, tries=tries, seed=seed,
                           device=self.device, drop_context=drop_context,
                           **settings.for_run(self.config).generate_kwargs())  # shift None: the run's flow_shift

    def __repr__(self):
        run = self.config.clip_name if self.config is not None else "model folder"
        return (f"V4SPipeline({type(self.model).__name__}, {type(self.codec).__name__}, "
                f"{type(self.text_encoder).__name__}, clip {self.clip_config.width}x{self.clip_config.height}, "
                f"trained at {run}, device {self.device})")


def validation_hook(cfg, **generate_kw):
    """train(cfg, on_validate=...) for cfg.validate_every: at each validation step, one video per folder of
    cfg.validation_clips (sample_clip with cfg.validation_steps solver steps, seed cfg.seed) written with
    write_sample to run_dir/validation/step_XXXXXX/<clip>.mp4 (+ .json); returns {clip: generated frames side by
    side} for TensorBoard. With two clips or more it also returns the condition gaps on them ("does the model
    listen?", flow.condition_gaps: the loss with another clip's instruction or room, or noise, against the true
    ones), which train() logs beside the loss: the signal issue 13 asks to watch while training, not after it.
    The clips are read (and checked) now, once; train() handles eval mode and EMA weights.
    generate_kw: generate()'s settings (default: joint guidance, scale 5)."""
    from .codec import build_codecs
    from .flow import CONDITION_PROBES, condition_gaps
    from .latents import encode_clip

    clip_cfg = cfg.clip_config
    examples = {Path(f).name: load_example(f, clip_cfg, cfg.sampling, cfg.seed) for f in cfg.validation_clips}
    codec, text_encoder = build_codecs(cfg)
    settings = {"steps": cfg.validation_steps, "shift": cfg.flow_shift, **generate_kw}
    probe = {}  # "items": the clips as training encodes them (box frames as cfg says); "null": the "" embedding;
    # both made at the first validation step, on the model's device

    def on_validate(step: int, model, run_dir) -> dict:
        device = next(model.parameters()).device
        out, images = Path(run_dir) / "validation" / f"step_{step:06d}", {}
        for name, example in examples.items():
            sample = sample_clip(model, codec, text_encoder, example, clip_cfg, seed=cfg.seed, device=device,
                                 **settings)[0]
            write_sample(out, name, example["context"].numpy(), sample, clip_cfg.box_frames, clip_cfg.fps,
                         extra={"instruction": example["instruction"], "step": step, **settings})
            images[name] = np.concatenate(list(sample.frames), axis=1)  # the frames in a row
        if len(examples) < 2:  # the "other" probes borrow another clip's conditions
            return images
        if not probe:
            box = clip_cfg.box_frames if cfg.box_frames else 0
            probe["items"] = [{k: v.float() if torch.is_tensor(v) else v for k, v in
                               encode_clip(ex, codec, text_encoder, box, device=device).items()}
                              for ex in examples.values()]
            probe["null"] = text_encoder.encode([""])[0].float()
        gaps = condition_gaps(model, probe["items"], probe["null"], seed=cfg.seed, device=device)
        # and at pure noise alone, where sampling decides which way the walk goes: there the shipped model hears the
        # instruction (+19% at the destination) and not the room (+0.2%; results/gpu_2026-12-04)
        layout = condition_gaps(model, probe["items"], probe["null"], sigmas=(1.0,), seed=cfg.seed, device=device)
        # the mean gap, and the gap on the walk's last latent frame (the destination: where the room should matter)
        return {**images, **{f"gap: {p}": gaps[p + " gap"] for p in CONDITION_PROBES[1:]},
                **{f"end gap: {p}": gaps[p + " gap by frame"][-1] for p in CONDITION_PROBES[1:]},
                **{f"pure-noise end gap: {p}": layout[p + " gap by frame"][-1] for p in CONDITION_PROBES[1:]}}

    return on_validate


def add_cli(subparsers):
    # `v4s train` generates validation videos with this module's hook (train.py, an earlier layer, cannot import it)
    if "train" in subparsers.choices:
        subparsers.choices["train"].set_defaults(validation_hook=validation_hook)
    p = subparsers.add_parser("sample", help="generate target videos for a clip with joint CFG; mp4 + box JSON")
    p.add_argument("checkpoint", help="a training checkpoint (runs/quick/step_000150) or a saved V4SModel folder")
    p.add_argument("--clip", required=True, help="a clip folder written by `v4s make-data`")
    p.add_argument("--out", default="samples", help="output folder (default samples/)")
    SamplingSettings.add_arguments(p.add_argument_group("sampling"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tries", type=int, default=1, help="samples with seeds seed, seed+1, ...")
    p.add_argument("--instruction", default=None, help="replace the clip's instruction")
    p.add_argument("--sampling", default="noncontiguous", choices=["noncontiguous", "contiguous"])
    p.add_argument("--clip-config", default=None,
                   help="quick | lite | paper (default: the checkpoint's; a paper_train run samples at paper)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when EMA weights were saved")
    p.add_argument("--fp8", action="store_true", help="FP8 matmuls in the transformer blocks (L4, H100, H200: faster "
                   "compiled, ~3%% error per product)")
    add_compile_argument(p)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cli)


def add_compile_argument(parser):
    """--compile / --no-compile, shared by `v4s sample` and `v4s eval --checkpoint` (V4SPipeline.from_pretrained)."""
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the transformer blocks (default: on a GPU for a run trained with "
                             "wan.compile, or with --fp8; never on a CPU)")


def _cli(args):
    settings = SamplingSettings.from_args(args)  # a bad setting fails here, before the model loads
    pipe = V4SPipeline.from_pretrained(args.checkpoint, device=args.device, ema=not args.no_ema,
                                       clip_config=args.clip_config, fp8=args.fp8,
                                       compile=args.compile)  # paper_train samples at paper
    clip_cfg, device = pipe.clip_config, pipe.device
    folder = Path(args.clip).resolve()
    example = pipe.load_example(folder, args.sampling, args.seed)
    if args.instruction:
        example["instruction"] = args.instruction
    t0 = time.perf_counter()
    samples = pipe(example, settings, tries=args.tries, seed=args.seed)
    settings = settings.for_run(pipe.config)  # recorded as sampled: the run's schedule (Wan2.2 configs: 5.0)
    settings = {"checkpoint": args.checkpoint, "clip": args.clip, **asdict(settings)}
    settings["seconds_per_try"] = round((time.perf_counter() - t0) / args.tries, 2)  # encode + denoise + decode
    settings["shape"] = {"context_frames": clip_cfg.context_frames, "target_frames": clip_cfg.target_frames,
                         "width": clip_cfg.width, "height": clip_cfg.height}
    if device.type == "cuda":
        settings["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    for s in samples:
        mp4, js = write_sample(args.out, f"{folder.name}_seed{s.seed}", example["context"].numpy(), s,
                               clip_cfg.box_frames, clip_cfg.fps,
                               extra={"instruction": example["instruction"], **settings})
        box = s.final_box(clip_cfg.box_frames)
        print(f"seed {s.seed}: {mp4} ({'box ' + str(np.round(box, 1).tolist()) if not np.isnan(box).any() else 'no box found'})")
    return 0

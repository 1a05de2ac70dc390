"""Flow-matching training of the context-conditioned Wan transformer (notebook 05): the loop (accelerate, EMA,
checkpoints, logging, validation, the `v4s train` command). The objective's pieces (noise levels, the seeded
batches, the loss) are in flow.py, the encoded clips it trains on in latents.py (encode_clips).

Rectified flow, as Wan trains: a clean latent x0 and Gaussian noise are mixed on a straight line,

    x_sigma = (1 - sigma) * x0 + sigma * noise,        sigma in (0, 1)

and the transformer learns the constant velocity along that line, v = noise - x0 (mean squared error).
Training draws sigma with Wan's shifted schedule: u ~ U(0, 1) (or logit-normal), then
sigma = shift * u / (1 + (shift - 1) * u), which spends more steps at high noise where layout is decided.

Only the target's generated latents are noised. The context latents and the target's first latent stay
clean (timestep 0), and the conditions are dropped at random (cfg.drop_conditions) so that joint
classifier-free guidance has unconditional branches to use at sampling time (notebook 06).

    cfg = load_config("configs/quick.yaml")
    run_dir = train(cfg)                  # or: v4s train configs/quick.yaml [--resume]

Exact resume: every random draw of a step (which clips, which sigma, which noise, which condition is
dropped) is a pure function of (seed, step, sample position in the global batch). So a resumed run needs
only the step, the weights and the optimizer/scheduler/EMA states to continue bit-for-bit, and N processes
with B/N samples each compute the same update as one process with B samples.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml

from .checkpoints import latest_checkpoint, load_checkpoint, rotate_checkpoints, save_checkpoint
from .config import COMPILE_MODES, LR_SCHEDULES, TrainConfig, load_config, parse_override
from .flow import DeviceBatches, StepBatches, flow_loss
from .latents import encode_clips, latent_cache_folder, n_clips, prepare_items
from .model import build_model, lora_input_casts
from .utils import TrainingDiverged, V4SError, get_device, seed_everything


def count_parameters(model, trainable_only=False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------------------------------- data
def _launched_device(cfg: TrainConfig) -> torch.device:
    """This process's device: cfg.device, and under a multi-process launch on GPUs the GPU of its local rank."""
    from accelerate import PartialState

    device = get_device(cfg.device)
    return PartialState(cpu=device.type == "cpu").device if device.type in ("cpu", "cuda") else device


def _per_step(micro_batches, n: int):
    """Group the stream of micro-batches into lists of n (one optimizer step each)."""
    it = iter(micro_batches)
    while group := list(itertools.islice(it, n)):
        yield group


class _HostCopy:
    """Scalars on the GPU (None allowed) copied to the host without waiting: the copy is queued behind the step's
    work and get() waits for it, which the loop calls a step later, once the next step's work is queued, so the GPU
    does not idle while the host reads a log row and builds the next batch (a log row every step left the 5B loop's
    GPU idle 48-64 ms per step: results/gpu_2026-12-05d). `at`, after get(): when the step finished, on the host's
    clock (on a GPU from its own timeline, `clock`), so a row read late still times its own steps."""

    def __init__(self, *values, clock: "_GpuClock | None" = None):
        self.missing = [v is None for v in values]
        numbers = torch.stack([v.detach().float().reshape(()) for v in values if v is not None])
        self.ready, self.clock = None, clock
        if numbers.is_cuda:
            self.host = torch.empty(numbers.shape, dtype=numbers.dtype, pin_memory=True)
            self.host.copy_(numbers, non_blocking=True)
            self.ready = torch.cuda.Event(enable_timing=True)
            self.ready.record()
        else:  # the step has run: the host computed it
            self.host, self.at = numbers.clone(), time.perf_counter()  # (the caller zeroes its tensor in place next)

    def get(self) -> list:
        if self.ready is not None:
            self.ready.synchronize()
            self.at = self.clock.time_of(self.ready)
        numbers = iter(self.host.tolist())
        return [None if m else next(numbers) for m in self.missing]


class _GpuClock:
    """The host time (time.perf_counter) at which a recorded CUDA event completed: an origin event, waited for once,
    and the GPU's elapsed time from it."""

    def __init__(self):
        self.origin = torch.cuda.Event(enable_timing=True)
        self.origin.record()
        self.origin.synchronize()
        self.t0 = time.perf_counter()

    def time_of(self, event) -> float:
        return self.t0 + self.origin.elapsed_time(event) / 1e3


# --------------------------------------------------------------------------------------------- loop
def read_log(run_dir) -> list[dict]:
    """A run's loss log (run_dir/loss.jsonl) as a list of rows; run_dir may also be the .jsonl file itself (a log
    kept apart from its run, as results/ keeps them), or that file compressed with xz (.jsonl.xz: results/ keeps its
    long logs so, tests/test_device_tree.py)."""
    import lzma

    path = Path(run_dir)
    path = path if path.suffix in (".jsonl", ".xz") else path / "loss.jsonl"
    if not path.exists():
        return []
    text = lzma.open(path, "rt").read() if path.suffix == ".xz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def seconds_per_step(log: list[dict]) -> float:
    """Seconds per step over the second half of a loss log (read_log): after compilation and warm-up, which the
    first steps pay. The figure benchmarks and device scripts report. A resumed run's `seconds` start again from 0
    (the log holds both runs' rows), so only the rows after the last restart in that half are timed."""
    half = [r for r in log if r["step"] > log[-1]["step"] // 2]
    restarts = [i for i in range(1, len(half)) if half[i]["seconds"] < half[i - 1]["seconds"]]
    half = half[restarts[-1]:] if restarts else half
    if len(half) < 2:
        raise V4SError(f"the log's second half has {len(half)} row(s) (last step {log[-1]['step'] if log else 0}): "
                       "seconds per step needs two; train more steps or log more often (log_every)")
    return (half[-1]["seconds"] - half[0]["seconds"]) / max(1, half[-1]["step"] - half[0]["step"])


def plot_loss(run_dir, out=None, ax=None):
    """The loss curve (raw and smoothed) of a run; saved as loss.png beside the log unless ax is given."""
    import matplotlib.pyplot as plt

    log = read_log(run_dir)
    steps = np.array([r["step"] for r in log])
    loss = np.array([r["loss"] for r in log])
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.plot(steps, loss, alpha=0.35, label="loss")
    k = max(1, len(loss) // 10)
    if len(loss) >= k:
        ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
    ax.set(xlabel="step", ylabel="flow-matching MSE", yscale="log")
    ax.legend()
    if own:
        fig.tight_layout()
        fig.savefig(out or Path(run_dir) / "loss.png")
        plt.close(fig)
    return ax


# long (~160 lines) on purpose: the training loop reads top to bottom; its separable pieces are the helpers below
def train(cfg: TrainConfig, resume=None, model=None, items=None, null_text=None, on_validate=None) -> Path:
    """Train with flow matching; returns the run folder (checkpoints step_XXXXXX/, loss.jsonl, loss.png).

    resume: None, True (the latest checkpoint in cfg.out_dir) or a step_XXXXXX path.
    model / items / null_text: an already built V4SModel, pre-encoded clips and the "" embedding (otherwise
    build_model / encode_clips / the text encoder): the full-model path passes its own (LoRA on
    Wan2.2-TI2V-5B, items = latents.LatentCache(folder), whose `null_embeds` is used when null_text is None).
    on_validate: with cfg.validate_every, called as on_validate(step, model, run_dir) on the main process every
    validate_every steps (model in eval mode, EMA weights swapped in, no grad); it may return {name: uint8 HxWx3
    image} for TensorBoard. sample.validation_hook(cfg) builds the one `v4s train` passes (train.py precedes sample.py).
    """
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    if cfg.wan is not None and cfg.wan.fp8_base and cfg.lora_rank == 0:
        raise V4SError("wan.fp8_base quantizes the frozen base under a LoRA adapter: set lora_rank > 0 (the Wan configs "
                       "use 32) or wan.fp8_base: false")
    if cfg.validate_every and on_validate is None:
        raise V4SError(f"validate_every={cfg.validate_every} needs a validation hook: train(cfg, on_validate="
                       "sample.validation_hook(cfg)) (`v4s train` passes it), or set validate_every=0")
    device = get_device(cfg.device)
    precision = cfg.mixed_precision if cfg.mixed_precision != "auto" else ("bf16" if device.type == "cuda" else "no")
    _precision_for_this_run(precision)
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=precision, **_parallel_settings(cfg, device),
                              **_tracker_settings(cfg))
    fsdp = cfg.parallel == "fsdp"
    world, rank, accum = accelerator.num_processes, accelerator.process_index, cfg.grad_accum_steps
    if cfg.batch_size % (world * accum):
        raise V4SError(f"batch_size={cfg.batch_size} must be a multiple of the {world} processes x grad_accum_steps="
                       f"{accum} (each micro-step of each process takes batch_size / {world * accum} samples)")
    seed_everything(cfg.seed)
    run_dir = Path(cfg.out_dir)

    if items is None:  # every process encodes its share of a missing cache (encode_clips), then reads all of it
        items, null_text = prepare_items(cfg, device=accelerator.device)
    elif null_text is None:
        if not hasattr(items, "null_embeds"):
            raise V4SError("train(items=...) needs null_text (the \"\" embedding) unless items has .null_embeds")
        null_text = items.null_embeds
    if model is None:  # after the encoders are gone
        model = build_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    if device.type == "cuda":  # fused AdamW (one kernel for every parameter) needs the weights there first
        model.to(device)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda" or None)
    lr_scheduler = get_scheduler(LR_SCHEDULES[cfg.lr_schedule], optimizer, num_warmup_steps=cfg.warmup_steps,
                                 num_training_steps=cfg.steps)
    ema = EMAModel(params, decay=cfg.ema_decay, foreach=True) if cfg.ema_decay > 0 else None

    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir) if resume is True else Path(resume)
        if ckpt is None:
            raise V4SError(f"--resume: no step_XXXXXX checkpoint in {run_dir}; start without --resume")
        if fsdp:
            raise V4SError(f"--resume with parallel=fsdp: its checkpoints hold the gathered weights but no optimizer "
                           f"state yet (not built: needs a GPU to test); continue {ckpt} with parallel=ddp")
        start = load_checkpoint(ckpt, model, optimizer, lr_scheduler, ema)
        if accelerator.is_main_process:  # the log continues from the checkpoint, dropping steps after it
            kept = [r for r in read_log(run_dir) if r["step"] <= start]
            (run_dir / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    elif accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "loss.jsonl").write_text("")
        (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    if ema is not None:
        ema.to(accelerator.device)

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    on_gpu = accelerator.device.type == "cuda"
    ddp_model, optimizer = accelerator.prepare(model, optimizer)
    if fsdp:  # FSDP2 swapped the parameters for their shards (DTensors): clip and step those
        params = [p for p in ddp_model.parameters() if p.requires_grad]
    ddp_model.train()
    # a `wan:` run compiles block by block (wan.compile, full.configure_speed), not the whole model
    forward = _compiled(ddp_model, *compile_choice(cfg.compile, on_gpu, cfg.wan is not None, world))
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not (cfg.progress and accelerator.is_main_process))
    if cfg.device_batches is True or (cfg.device_batches == "auto" and on_gpu and cfg.wan is None):
        make = DeviceBatches(items, cfg, null_text, accelerator.device, rank, world)
        accelerator.unwrap_model(ddp_model).check_positions(make.host_positions, make.n_noisy)  # once, not per step
        batches = (make(s, k) for s in range(start, cfg.steps) for k in range(accum))
    else:
        batches = torch.utils.data.DataLoader(StepBatches(items, cfg, null_text, start, rank, world), batch_size=None,
                                              num_workers=cfg.batch_workers,
                                              prefetch_factor=2 if cfg.batch_workers else None, pin_memory=on_gpu)
    # The host reads the loss and the gradient norm only at log steps (and checkpoints): a read forces the host to
    # wait for the GPU, which then idles while Python prepares the next step. So a log row's numbers start their
    # copy to the host at its step and are read one step later, once the next step's work is queued (_HostCopy);
    # at a step that saves, validates or stops they are read at once: the divergence checks run on the window's
    # mean loss and largest gradient norm before any checkpoint is written.
    window_loss, window_norm, window_n = torch.zeros((), device=accelerator.device), None, 0
    pending = None  # (step, lr, _HostCopy) of the last log row, read after the next step is queued
    clock = _GpuClock() if on_gpu else None  # (one wait, before the first step)
    profiler = _profiler(cfg, run_dir, start, accelerator)
    t_start = t_window = time.perf_counter()
    paused = 0.0  # seconds spent saving and validating since the last log row: not the steps' own time
    window_start = start
    flops_per_sample = None  # model FLOPs of one sample's training step, from the first batch (sample_flops)
    recent, last_good = [], latest_checkpoint(run_dir) if accelerator.is_main_process else None

    def write_row(done, lr, numbers):
        """The log row of step `done` (a window of steps since the last row): divergence checks, loss.jsonl, trackers."""
        nonlocal recent, t_window, window_start, paused
        mean_loss, norm = numbers.get()
        _check_loss(mean_loss, recent, cfg, done - 1, last_good)
        if norm is not None and not math.isfinite(norm):
            raise TrainingDiverged(f"step {done}: the gradient norm is {norm}; last good checkpoint: "
                                   f"{last_good}. Lower lr or raise grad clipping.")
        recent = (recent + [mean_loss])[-50:]
        now = numbers.at  # when step `done` finished (read late, the row still times its own steps)
        rate = (done - window_start) * cfg.batch_size / max(now - t_window - paused, 1e-9)
        row = {"step": done, "loss": mean_loss, "lr": lr, "grad_norm": norm,
               "seconds": round(now - t_start, 3),  # since this call started
               "samples_per_s": round(rate, 2),
               # model FLOP/s (3x the forward's matmuls, budget.transformer_flops): against the GPU's
               # peak, the share of it the run uses (MFU)
               "model_tflops": float(f"{rate * flops_per_sample / 1e12:.4g}")}
        t_window, window_start, paused = now, done, 0.0
        if isinstance(forward, _FallbackToEager):  # did compilation hold? (a benchmark must not time eager)
            row["compiled"] = forward.compiled is not forward.eager
        if on_gpu:  # the allocator's high-water mark: a counter read, no device sync
            row["peak_gib"] = round(torch.cuda.max_memory_allocated(accelerator.device) / 2**30, 2)
        if accelerator.is_main_process:
            with open(run_dir / "loss.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        if cfg.log_with:  # the trackers write on the main process only
            accelerator.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=done)

    with _StopOnInterrupt() as interrupt, _tracking(accelerator, cfg, start), \
            profiler or contextlib.nullcontext(), lora_input_casts(model, autocast=dtype is not None):
        for step, micro_batches in zip(bar, _per_step(batches, accum)):
            # grad_accum_steps micro-batches, gradients summed (DDP syncs them once, on the last): each loss is a
            # mean over its micro-batch, so loss / accum adds up to the global batch's mean
            step_loss = torch.zeros((), device=accelerator.device)
            for k, batch in enumerate(micro_batches):
                if flops_per_sample is None:  # shapes only: the same for every step of a run
                    flops_per_sample = sample_flops(accelerator.unwrap_model(ddp_model), batch)
                with accelerator.no_sync(ddp_model) if k < accum - 1 else contextlib.nullcontext():
                    loss = flow_loss(forward, batch, cfg, accelerator, dtype)
                    accelerator.backward(loss / accum)
                step_loss += loss.detach()
            window_loss += accelerator.reduce(step_loss / accum, "mean")
            window_n += 1
            grad_norm = accelerator.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
            if grad_norm is not None:
                grad_norm = torch.as_tensor(grad_norm).detach().float()
                window_norm = grad_norm if window_norm is None else torch.maximum(window_norm, grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(params)
            done = step + 1
            stop = interrupt.requested
            if accelerator.num_processes > 1:  # every process stops at the same step, or the others would hang
                stop = bool(accelerator.reduce(torch.tensor(float(stop), device=accelerator.device), "sum").item())
            save, validate = _step_duties(cfg, done)
            save = save or stop
            ready = [pending] if pending is not None else []  # the last row's copy: this step's work is queued
            pending = None
            if done % cfg.log_every == 0 or save:
                row_numbers = (done, lr_scheduler.get_last_lr()[0],
                               _HostCopy(window_loss / window_n, window_norm, clock=clock))
                window_loss.zero_()  # queued after the copy above, on the same stream
                window_norm, window_n = None, 0
                if save or validate:  # (save includes stop: an interrupt saves)
                    ready.append(row_numbers)
                else:
                    pending = row_numbers
            for row_numbers in ready:
                write_row(*row_numbers)
            # FSDP: every process takes part in gathering the whole weights; the main one saves them
            t_pause = time.perf_counter()
            weights = accelerator.get_state_dict(ddp_model) if save and fsdp else None
            if accelerator.is_main_process:
                if save:
                    last_good = save_checkpoint(run_dir, done, accelerator.unwrap_model(ddp_model),
                                                None if fsdp else optimizer, lr_scheduler, ema, cfg, weights=weights)
                    rotate_checkpoints(run_dir, cfg.keep_checkpoints, cfg.keep_steps, current=done)
                if validate:
                    _validate(on_validate, done, accelerator.unwrap_model(ddp_model), params, ema, run_dir, accelerator)
                if stop:
                    print(f"interrupted: stopped after step {done} and saved {last_good}; continue with --resume")
            if save or stop or validate:
                accelerator.wait_for_everyone()
                paused += time.perf_counter() - t_pause  # the next row's samples_per_s counts the steps alone
            if stop:
                break
            if profiler is not None:
                profiler.step(done)
        if pending is not None:  # the batches ran out before a saving step (the last step always saves)
            write_row(*pending)
    if accelerator.is_main_process:
        plot_loss(run_dir)
    return run_dir


def sample_flops(model, batch: dict) -> float:
    """Model FLOPs of one sample's training step: 3x the forward's matrix products (budget.transformer_flops, the
    convention of model FLOPs utilisation; checkpointing's recomputation not counted) at the batch's token count."""
    from .budget import transformer_flops

    _, _, n_context, h, w = batch["context"].shape
    tokens = model.layout(n_context, batch["noisy"].shape[2], h, w).n_tokens  # [context | first | noisy], patched
    return 3 * transformer_flops(model.transformer.config, tokens, text_tokens=batch["text"].shape[1])


def _profiler(cfg: TrainConfig, run_dir: Path, start: int, accelerator):
    """profiling.StepProfiler over cfg.profile_steps steps after cfg.profile_after more (main process only), or
    None."""
    if not cfg.profile_steps:
        return None
    first = start + cfg.profile_after + 1
    if first + cfg.profile_steps - 1 > cfg.steps:  # every process refuses, or the others would wait for the main one
        raise V4SError(f"profile_steps={cfg.profile_steps} after profile_after={cfg.profile_after} would record "
                       f"steps {first}-{first + cfg.profile_steps - 1}, past steps={cfg.steps} (this run starts "
                       f"after step {start}): lower profile_after or raise steps")
    if not accelerator.is_main_process:
        return None
    window = range(first, first + cfg.profile_steps)
    busy = [d for d in window if any(_step_duties(cfg, d))]
    if busy:  # their saving / validation time would read as the step's own host time and device idle gaps
        print(f"profile: steps {busy} of the recorded {first}-{window[-1]} also save a checkpoint or validate; "
              f"their time is in the profile (move profile_after, or checkpoint_every / validate_every)")
    from .profiling import StepProfiler

    return StepProfiler(run_dir / "profile", first, cfg.profile_steps, start, accelerator.device)


def _step_duties(cfg: TrainConfig, done: int) -> tuple[bool, bool]:
    """(saves a checkpoint, validates) after step `done` of the run, as scheduled (an interrupt also saves)."""
    return (done % cfg.checkpoint_every == 0 or done == cfg.steps,
            bool(cfg.validate_every) and done % cfg.validate_every == 0)


def _precision_for_this_run(precision: str) -> None:
    """accelerate fixes a process's mixed precision at its first Accelerator: a second train() in the same process
    (a notebook kernel: bf16 on a GPU, then an fp32 exercise) would stop with "restart your runtime". A single
    process shares that state with nobody, so it is cleared for the new run (accelerate's AcceleratorState only; the
    process's device and group, PartialState, stay). Under a launcher every process must agree: an error there."""
    from accelerate.state import AcceleratorState, PartialState

    before = AcceleratorState._shared_state.get("_mixed_precision")
    if before is None or before == precision:
        return
    if PartialState().num_processes > 1:
        raise V4SError(f"this process already trained with mixed_precision={before!r}; under a launcher all runs of a "
                       f"process share it: set mixed_precision={before!r} or start a new launch")
    AcceleratorState._reset_state()


def _parallel_settings(cfg: TrainConfig, device: torch.device) -> dict:
    """Accelerator(...) arguments for cfg.parallel: none for DDP (accelerate's default with several processes), an
    FSDP2 plugin for "fsdp" (each Wan transformer block its own shard unit, whole weights gathered for saving)."""
    import os

    launched_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if cfg.parallel != "fsdp":
        if launched_fsdp:  # accelerate would build its own FSDP plugin from the launch config, past our checks
            raise V4SError("launched with an FSDP accelerate config (ACCELERATE_USE_FSDP=true) but parallel=ddp: "
                           "set parallel=fsdp (--set parallel=fsdp) or launch with a DDP config")
        return {}
    if device.type != "cuda":  # accelerate 1.16 keeps MULTI_CPU (DDP) and ignores the plugin off GPUs
        raise V4SError(f"parallel=fsdp needs GPUs (device is {device.type}): accelerate runs FSDP on accelerators "
                       "only; use parallel=ddp")
    from accelerate.utils import FullyShardedDataParallelPlugin
    from diffusers import WanTransformer3DModel

    return {"fsdp_plugin": FullyShardedDataParallelPlugin(
        fsdp_version=2, reshard_after_forward=True, auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=list(WanTransformer3DModel._no_split_modules),
        state_dict_type="FULL_STATE_DICT", cpu_ram_efficient_loading=False)}


def _tracker_settings(cfg: TrainConfig) -> dict:
    """Accelerator(...) arguments for cfg.log_with: TensorBoard event files under run_dir/tensorboard/."""
    if not cfg.log_with:
        return {}
    from accelerate.utils import is_tensorboard_available

    if not is_tensorboard_available():
        raise V4SError("log_with='tensorboard' needs the tensorboard package: pip install tensorboard (or "
                       "pip install -e '.[tensorboard]'), or set log_with='' (loss.jsonl only)")
    return {"log_with": cfg.log_with, "project_dir": cfg.out_dir}


@contextlib.contextmanager
def _tracking(accelerator, cfg: TrainConfig, start: int):
    """accelerate's trackers for the loop: started with the config as hyperparameters, ended (files flushed and
    closed) however the loop ends. A resumed run drops the events after its checkpoint (purge_step)."""
    if not cfg.log_with:
        yield
        return
    hparams = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str)
               for k, v in asdict(cfg).items()}
    init = {"tensorboard": {"purge_step": start + 1}} if start else {}
    accelerator.init_trackers("tensorboard", config=hparams, init_kwargs=init)
    try:
        yield
    finally:
        accelerator.end_training()


def _validate(on_validate, step: int, model, params, ema, run_dir, accelerator):
    """on_validate(step, model, run_dir) with the model in eval mode and the EMA weights in (as save_checkpoint
    saves them), then back to training. What it returns: images go to TensorBoard when that is on; numbers (e.g.
    the condition gaps) to run_dir/validation.jsonl, one row per validation step, and to TensorBoard."""
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    model.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            out = on_validate(step, model, run_dir) or {}
    finally:
        model.train()
        if ema is not None:
            ema.restore(params)
    images = {k: v for k, v in out.items() if not isinstance(v, (int, float))}
    numbers = {k: float(v) for k, v in out.items() if isinstance(v, (int, float))}
    if numbers:
        with open(Path(run_dir) / "validation.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **numbers}) + "\n")
        print(f"validation step {step}: " + ", ".join(f"{k} {v:+.3f}" for k, v in numbers.items()))
    if accelerator.trackers:
        if numbers:
            accelerator.log({f"validation/{k}": v for k, v in numbers.items()}, step=step)
        if images:
            accelerator.get_tracker("tensorboard").log_images(
                {f"validation/{name}": np.asarray(img)[None] for name, img in images.items()}, step=step,
                dataformats="NHWC")


# compile: auto on one GPU: CUDA graphs, measured faster than the default mode on the H200 (benchmarks/train_loop.py,
# results/gpu_2026-12-03f: 23.9 against 34.0 ms per step at batch 64; the `v4s train` loop ran at 24.0 ms per step)
AUTO_COMPILE_MODE = "reduce-overhead"


def compile_choice(compile, on_gpu: bool, wan: bool, processes: int = 1) -> tuple[bool, str | None]:
    """(compile or not, torch.compile mode) for TrainConfig.compile: a mode compiles with it, true with torch's
    default, "auto" only on a GPU and only the lite model (a `wan:` run compiles block by block): with CUDA graphs
    (AUTO_COMPILE_MODE) in one process, torch's default mode under several (CUDA graphs and DDP's gradient hooks are
    not measured together here)."""
    if compile in COMPILE_MODES:
        return True, compile
    if compile is True:
        return True, None
    if compile == "auto" and on_gpu and not wan:
        return True, AUTO_COMPILE_MODE if processes == 1 else None
    return False, None


def _compiled(model, on: bool, mode: str | None = None):
    """torch.compile(model, mode=mode) when asked (a GPU step of the lite model is 2.7x faster compiled), else the
    model. Compilation happens at the first forward; if it fails there, `predict` falls back to the eager model."""
    if not on:
        return model
    try:
        compiled = torch.compile(model, mode=mode)
    except Exception as e:  # noqa: BLE001 - an old torch or no compiler: train eagerly, and say so
        print(f"torch.compile unavailable ({type(e).__name__}: {e}); training eagerly")
        return model
    return _FallbackToEager(compiled, model, cuda_graphs=mode in ("reduce-overhead", "max-autotune"))


class _FallbackToEager:
    """Calls the compiled model; on the first call, a compilation error switches to the eager model for good.
    cuda_graphs: each call starts a new training iteration for CUDA graphs (torch.compiler.cudagraph_mark_step_begin:
    the graphs may then reuse the previous step's output memory, which the loop no longer reads)."""

    def __init__(self, compiled, eager, cuda_graphs: bool = False):
        self.compiled, self.eager, self.first, self.cuda_graphs = compiled, eager, True, cuda_graphs

    def __call__(self, *args, **kwargs):
        if self.cuda_graphs and self.compiled is not self.eager:
            torch.compiler.cudagraph_mark_step_begin()
        if not self.first:
            return self.compiled(*args, **kwargs)
        self.first = False
        try:
            return self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - torch._dynamo / inductor errors have no common public base
            print(f"torch.compile failed at the first step ({type(e).__name__}: {str(e)[:200]}); training eagerly")
            self.compiled = self.eager
            return self.eager(*args, **kwargs)


class _StopOnInterrupt:
    """Ctrl-C, a notebook's interrupt or `timeout -s INT`: finish the current step, save a checkpoint, return.
    A second interrupt more than GRACE_S later stops at once. (GNU timeout signals the command and then its whole
    process group, so one request can arrive twice: on the H200, 2026-12-03, that second copy stopped a run without
    its checkpoint.) Outside the main thread Python allows no handler: Ctrl-C stays as is."""
    GRACE_S = 1.0

    def __enter__(self):
        self.requested, self.requested_at, self._old = False, 0.0, None
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            pass
        return self

    def _handle(self, signum, frame):
        if self.requested:
            if time.monotonic() - self.requested_at > self.GRACE_S:
                raise KeyboardInterrupt
            return  # the same request again (timeout's copy to the process group)
        self.requested, self.requested_at = True, time.monotonic()

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _check_loss(loss: float, recent: list, cfg: TrainConfig, step: int, last_good):
    """Stop on NaN/inf or an explosion before the bad step touches the weights."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"step {step + 1}: the loss is {loss}. Training stopped; the last good checkpoint "
                               f"is {last_good}. Lower lr, keep grad_clip on, or check the data for NaNs.")
    if len(recent) >= 10 and loss > cfg.explode_factor * float(np.median(recent)):
        raise TrainingDiverged(f"step {step + 1}: the loss {loss:.3g} exploded (> {cfg.explode_factor:g} x the recent "
                               f"median {np.median(recent):.3g}). Training stopped; the last good checkpoint is "
                               f"{last_good}. Lower lr or warm up longer.")


# ----------------------------------------------------------------------------------------------- CLI
def add_cli(subparsers):
    p = subparsers.add_parser("train", help="train the lite model with flow matching (configs/*.yaml)")
    p.add_argument("config", help="a YAML training config, e.g. configs/quick.yaml")
    p.add_argument("--resume", nargs="?", const=True, default=None,
                   help="continue the run in out_dir from its latest checkpoint (or from the step folder given)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set steps=20 --set out_dir=runs/try")
    p.add_argument("--encode-only", action="store_true",
                   help="only encode the clips into latent_cache (so parallel runs and resumes skip decoding)")
    # validation_hook(cfg) -> on_validate for train(): sample.add_cli sets it (sample.py comes after train.py)
    p.set_defaults(func=_cli, validation_hook=None)


def _cli(args):
    cfg = load_config(args.config, **dict(parse_override(s) for s in args.set))
    if args.encode_only:
        if not cfg.latent_cache:
            raise V4SError("--encode-only fills latent_cache: set it, e.g. --set latent_cache=data/lite/latents")
        # under accelerate launch / torchrun each process encodes its share on its own device (encode_clips)
        device = _launched_device(cfg)
        items = encode_clips(cfg, device=device)  # the encoders load only if the cache is missing
        print(f"{len(items)} encoded items in {latent_cache_folder(cfg, n_clips(cfg))}")
        return 0
    hook = getattr(args, "validation_hook", None)
    run_dir = train(cfg, resume=args.resume, on_validate=hook(cfg) if cfg.validate_every and hook else None)
    log = read_log(run_dir)
    if log:
        print(f"trained {log[-1]['step']} steps; final loss {log[-1]['loss']:.4g}; run in {run_dir} "
              f"(checkpoints step_XXXXXX/, loss.jsonl, loss.png)")
    return 0

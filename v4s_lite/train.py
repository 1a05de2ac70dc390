"""Flow-matching training of the context-conditioned Wan transformer (notebook 05).

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
import functools
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
from .config import TrainConfig, load_config, parse_override
from .latents import encode_clips, latent_cache_folder, n_clips, prepare_items
from .model import build_model
from .utils import TrainingDiverged, V4SError, get_device, seed_everything


# ------------------------------------------------------------------------------------ flow matching
def shift_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's timestep shift, the formula of diffusers' FlowMatchEulerDiscreteScheduler(shift=...)."""
    return shift * u / (1 + (shift - 1) * u)


def sample_sigmas(n: int, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Noise levels for n samples: diffusers' density for u, then the shift."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(cfg.weighting_scheme, n, logit_mean=cfg.logit_mean,
                                              logit_std=cfg.logit_std, mode_scale=cfg.mode_scale,
                                              generator=generator, device=generator.device)
    # keep sigma off the exact ends: at 0 the target is clean, at 1 there is nothing of x0 left to learn
    return shift_sigmas(u.clamp(1e-3, 1 - 1e-3), cfg.flow_shift)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_sigma = (1 - sigma) x0 + sigma noise (= FlowMatchEulerDiscreteScheduler.scale_noise)."""
    sigma = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - sigma) * x0 + sigma * noise


def flow_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the model predicts: d x_sigma / d sigma = noise - x0."""
    return noise - x0


def sample_rng(seed: int, step: int, position: int) -> torch.Generator:
    """The generator of one sample of one step: a pure function of its coordinates (see module doc)."""
    state = np.random.SeedSequence([seed, step, position]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def batch_indices(n_items: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Sample indices of the global batch of `step`: epochs are seeded permutations laid end to end."""
    start = step * batch_size
    out = []
    for pos in range(start, start + batch_size):
        epoch, i = divmod(pos, n_items)
        out.append(int(_epoch_permutation(n_items, seed, epoch)[i]))
    return out


def batch_share(batch_size: int, world: int, accum: int, rank: int, micro: int) -> slice:
    """The global batch positions that process `rank` trains on in accumulation micro-step `micro`: micro-step k
    covers the block of positions k*world*m .. (k+1)*world*m - 1 and each process takes its m of it, where
    m = batch_size / (world * accum). Every position is drawn exactly once per step, whatever world and accum are,
    so the summed gradients equal one big batch's."""
    m = batch_size // (world * accum)
    first = (micro * world + rank) * m
    return slice(first, first + m)


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n_items: int, seed: int, epoch: int) -> np.ndarray:
    """One epoch's order, drawn once: a batch reads 64 positions of it, a step at most two epochs."""
    return np.random.default_rng([seed, epoch]).permutation(n_items)


def count_parameters(model, trainable_only=False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------------------------------- data
def _launched_device(cfg: TrainConfig) -> torch.device:
    """This process's device: cfg.device, and under a multi-process launch on GPUs the GPU of its local rank."""
    from accelerate import PartialState

    device = get_device(cfg.device)
    return PartialState(cpu=device.type == "cpu").device if device.type in ("cpu", "cuda") else device


def _pad_text(texts: list[torch.Tensor]) -> torch.Tensor:
    """Stack (L_i, D) embeddings, zero-padding to the longest (Wan pads its text with zeros too)."""
    L = max(t.shape[0] for t in texts)
    return torch.stack([torch.nn.functional.pad(t, (0, 0, 0, L - t.shape[0])) for t in texts])


def make_batch(items, indices: list[int], positions: list[int], cfg: TrainConfig, step: int,
               null_text: torch.Tensor) -> dict:
    """The noised training batch for the samples `indices` at global batch positions `positions`."""
    from .cfg import drop_conditions

    ctx, first, x0, text, noise, sigma, pos = [], [], [], [], [], [], []
    for i, p in zip(indices, positions):
        g = sample_rng(cfg.seed, step, p)
        it = items[i]
        tgt = it["target_latents"].float()
        first.append(tgt[:, :1]), x0.append(tgt[:, 1:])
        noise.append(torch.randn(x0[-1].shape, generator=g))
        sigma.append(sample_sigmas(1, cfg, g)[0])
        d = drop_conditions(it["prompt_embeds"].float()[None], it["context_latents"].float()[None],
                            null_text[None].float(), p_text=cfg.p_drop_text, p_context=cfg.p_drop_context,
                            p_both=cfg.p_drop_both, generator=g)
        ctx.append(d.context_latents[0]), text.append(d.text_emb[0])
        pos.append(torch.as_tensor(it["context_positions"]))  # computed once, by the data layer
    x0, noise, sigma = torch.stack(x0), torch.stack(noise), torch.stack(sigma)
    return {"context": torch.stack(ctx), "first": torch.stack(first), "noisy": add_noise(x0, noise, sigma),
            "sigma": sigma, "text": _pad_text(text), "positions": torch.stack(pos),
            "velocity": flow_target(x0, noise)}


class StepBatches(torch.utils.data.Dataset):
    """Item j = this process's noised micro-batch `j % grad_accum_steps` of step `start + j // grad_accum_steps`
    (without accumulation: item k = the batch of step start + k). Every draw of a batch is a pure function of
    (seed, step, position), so DataLoader workers can build the next batches while the model trains on this
    one, with the same numbers as building them in the loop."""

    def __init__(self, items, cfg: TrainConfig, null_text, start: int, rank: int = 0, world: int = 1):
        self.items, self.cfg, self.null_text, self.start = items, cfg, null_text, start
        self.accum = cfg.grad_accum_steps
        # this process's share of the global batch, per micro-step
        self.shares = [batch_share(cfg.batch_size, world, self.accum, rank, k) for k in range(self.accum)]

    def __len__(self):
        return (self.cfg.steps - self.start) * self.accum

    def __getitem__(self, j):
        (k, micro), b = divmod(j, self.accum), self.cfg.batch_size
        step, mine = self.start + k, self.shares[micro]
        idx = batch_indices(len(self.items), b, step, self.cfg.seed)
        positions = list(range(step * b, (step + 1) * b))
        return make_batch(self.items, idx[mine], positions[mine], self.cfg, step, self.null_text)


class DeviceBatches:
    """The GPU path of StepBatches: every encoded clip resident on the device, and each step's noised batch drawn
    there with one generator per step (seeded by (seed, step)), so nothing crosses from the host but B indices.
    Same semantics as make_batch (clips in the same seeded epoch order, sigma density and shift, exclusive condition
    dropout with noise for a dropped context); different random numbers, since they come from the device's
    generator. Still a pure function of (seed, step): a resumed run continues exactly, and every process draws the
    whole global batch (once per step) and keeps its share of each accumulation micro-step (batch_share), so N
    processes with any grad_accum_steps compute what one process with one big batch would."""

    def __init__(self, items, cfg: TrainConfig, null_text, device, rank: int = 0, world: int = 1):
        self.cfg, self.device, self.n = cfg, torch.device(device), len(items)
        self.shares = [batch_share(cfg.batch_size, world, cfg.grad_accum_steps, rank, k)
                       for k in range(cfg.grad_accum_steps)]
        self._drawn = (None, None)  # (step, its whole global batch): the micro-steps of a step share one draw
        stack = lambda key: torch.stack([it[key].float() for it in items]).to(self.device)  # noqa: E731
        self.context, self.target = stack("context_latents"), stack("target_latents")
        self.text = _pad_text([torch.as_tensor(it["prompt_embeds"]).float() for it in items]).to(self.device)
        self.null_text = torch.nn.functional.pad(null_text.float(), (0, 0, 0, self.text.shape[1] - null_text.shape[0]))
        self.null_text = self.null_text.to(self.device)
        # positions stay on the host: the model turns them into RoPE tables there (rope.ContextRoPE)
        self.positions = torch.stack([torch.as_tensor(it["context_positions"]) for it in items])

    def indices(self, step: int) -> torch.Tensor:
        """The global batch's clip indices (batch_indices: the same seeded epoch order as the host path)."""
        return torch.as_tensor(batch_indices(self.n, self.cfg.batch_size, step, self.cfg.seed))

    def __call__(self, step: int, micro: int = 0) -> dict:
        """This process's micro-batch `micro` of step `step` (without accumulation: its whole share)."""
        if self._drawn[0] != step:
            self._drawn = (step, self._draw(step))
        mine = self.shares[micro]
        return {k: v[mine] for k, v in self._drawn[1].items()}

    def _draw(self, step: int) -> dict:
        """The whole global batch of `step`."""
        from .cfg import drop_conditions

        cfg, b = self.cfg, self.cfg.batch_size
        state = np.random.SeedSequence([cfg.seed, step, 1 << 20]).generate_state(2, dtype=np.uint32)
        g = torch.Generator(self.device).manual_seed(int(state[0]) << 32 | int(state[1]))
        idx = self.indices(step)
        dev_idx = idx.to(self.device, non_blocking=True)
        tgt = self.target[dev_idx]
        x0, first = tgt[:, :, 1:], tgt[:, :, :1]
        noise = torch.randn(x0.shape, generator=g, device=self.device)
        sigma = sample_sigmas(b, cfg, g)
        d = drop_conditions(self.text[dev_idx], self.context[dev_idx], self.null_text[None], p_text=cfg.p_drop_text,
                            p_context=cfg.p_drop_context, p_both=cfg.p_drop_both, generator=g)
        return {"context": d.context_latents, "first": first, "noisy": add_noise(x0, noise, sigma), "sigma": sigma,
                "text": d.text_emb, "positions": self.positions[idx], "velocity": flow_target(x0, noise)}


def predict(model, batch: dict, device, dtype=None) -> torch.Tensor:
    """The model's velocity for the noisy target latents (timestep = sigma * 1000, diffusers' scale)."""
    mv = lambda x: x.to(device, dtype or x.dtype)
    return model(mv(batch["context"]), mv(batch["first"]), mv(batch["noisy"]), (batch["sigma"] * 1000).to(device),
                 mv(batch["text"]), context_positions=batch["positions"])


def flow_loss(model, batch: dict, cfg: TrainConfig, accelerator, dtype=None) -> torch.Tensor:
    """The batch's mean (sigma-weighted) flow-matching MSE."""
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    with accelerator.autocast():
        pred = predict(model, batch, accelerator.device, dtype)
    err = (pred.float() - batch["velocity"].to(pred.device)) ** 2
    weight = compute_loss_weighting_for_sd3(cfg.weighting_scheme, batch["sigma"]).to(err.device)
    return (weight * err.flatten(1).mean(1)).mean()


def _per_step(micro_batches, n: int):
    """Group the stream of micro-batches into lists of n (one optimizer step each)."""
    it = iter(micro_batches)
    while group := list(itertools.islice(it, n)):
        yield group


# --------------------------------------------------------------------------------------------- loop
def read_log(run_dir) -> list[dict]:
    path = Path(run_dir) / "loss.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


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

    if cfg.validate_every and on_validate is None:
        raise V4SError(f"validate_every={cfg.validate_every} needs a validation hook: train(cfg, on_validate="
                       "sample.validation_hook(cfg)) (`v4s train` passes it), or set validate_every=0")
    device = get_device(cfg.device)
    precision = cfg.mixed_precision if cfg.mixed_precision != "auto" else ("bf16" if device.type == "cuda" else "no")
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
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=cfg.warmup_steps)
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
    forward = _compiled(ddp_model, cfg.compile is True or (cfg.compile == "auto" and on_gpu and cfg.wan is None))
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not (cfg.progress and accelerator.is_main_process))
    if cfg.device_batches is True or (cfg.device_batches == "auto" and on_gpu and cfg.wan is None):
        make = DeviceBatches(items, cfg, null_text, accelerator.device, rank, world)
        batches = (make(s, k) for s in range(start, cfg.steps) for k in range(accum))
    else:
        batches = torch.utils.data.DataLoader(StepBatches(items, cfg, null_text, start, rank, world), batch_size=None,
                                              num_workers=cfg.batch_workers,
                                              prefetch_factor=2 if cfg.batch_workers else None, pin_memory=on_gpu)
    # The host reads the loss and the gradient norm only at log steps (and checkpoints): a read forces the host to
    # wait for the GPU, which then idles while Python prepares the next step. The divergence checks run there too,
    # on the window's mean loss and largest gradient norm, before any checkpoint is written.
    window_loss, window_norm, window_n = torch.zeros((), device=accelerator.device), None, 0
    t_start = t_window = time.perf_counter()
    window_start = start
    with _StopOnInterrupt() as interrupt, _tracking(accelerator, cfg, start):
        recent, last_good = [], latest_checkpoint(run_dir) if accelerator.is_main_process else None
        for step, micro_batches in zip(bar, _per_step(batches, accum)):
            # grad_accum_steps micro-batches, gradients summed (DDP syncs them once, on the last): each loss is a
            # mean over its micro-batch, so loss / accum adds up to the global batch's mean
            step_loss = torch.zeros((), device=accelerator.device)
            for k, batch in enumerate(micro_batches):
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
            save = done % cfg.checkpoint_every == 0 or done == cfg.steps or stop
            validate = bool(cfg.validate_every) and done % cfg.validate_every == 0
            if done % cfg.log_every == 0 or save:
                mean_loss = (window_loss / window_n).item()
                norm = None if window_norm is None else window_norm.item()
                _check_loss(mean_loss, recent, cfg, step, last_good)
                if norm is not None and not math.isfinite(norm):
                    raise TrainingDiverged(f"step {done}: the gradient norm is {norm}; last good checkpoint: "
                                           f"{last_good}. Lower lr or raise grad clipping.")
                recent = (recent + [mean_loss])[-50:]
                window_loss.zero_()
                window_norm, window_n = None, 0
                now = time.perf_counter()  # after the .item() above: the GPU has finished the window's steps
                row = {"step": done, "loss": mean_loss, "lr": lr_scheduler.get_last_lr()[0], "grad_norm": norm,
                       "seconds": round(now - t_start, 3),  # since this call started
                       "samples_per_s": round((done - window_start) * cfg.batch_size / max(now - t_window, 1e-9), 2)}
                t_window, window_start = now, done
                if on_gpu:  # the allocator's high-water mark: a counter read, no device sync
                    row["peak_gib"] = round(torch.cuda.max_memory_allocated(accelerator.device) / 2**30, 2)
                if accelerator.is_main_process:
                    with open(run_dir / "loss.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                    bar.set_postfix(loss=f"{mean_loss:.4f}")
                if cfg.log_with:  # the trackers write on the main process only
                    accelerator.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=done)
            # FSDP: every process takes part in gathering the whole weights; the main one saves them
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
            if stop:
                break
    if accelerator.is_main_process:
        plot_loss(run_dir)
    return run_dir


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
    saves them), then back to training; the images it returns go to TensorBoard when that is on."""
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    model.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            images = on_validate(step, model, run_dir) or {}
    finally:
        model.train()
        if ema is not None:
            ema.restore(params)
    if images and accelerator.trackers:
        accelerator.get_tracker("tensorboard").log_images(
            {f"validation/{name}": np.asarray(img)[None] for name, img in images.items()}, step=step,
            dataformats="NHWC")


def _compiled(model, on: bool):
    """torch.compile(model) when asked (a GPU step of the lite model is 2.7x faster compiled), else the model.
    Compilation happens at the first forward; if it fails there, `predict` falls back to the eager model."""
    if not on:
        return model
    try:
        compiled = torch.compile(model)
    except Exception as e:  # noqa: BLE001 - an old torch or no compiler: train eagerly, and say so
        print(f"torch.compile unavailable ({type(e).__name__}: {e}); training eagerly")
        return model
    return _FallbackToEager(compiled, model)


class _FallbackToEager:
    """Calls the compiled model; on the first call, a compilation error switches to the eager model for good."""

    def __init__(self, compiled, eager):
        self.compiled, self.eager, self.first = compiled, eager, True

    def __call__(self, *args, **kwargs):
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
    A second interrupt stops at once. (Outside the main thread Python allows no handler: Ctrl-C stays as is.)"""

    def __enter__(self):
        self.requested, self._old = False, None
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            pass
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

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

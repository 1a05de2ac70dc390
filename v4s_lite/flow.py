"""Flow matching, the training objective (notebook 05): noise levels, the seeded training batches, the loss, and
the probe built on that loss (does a trained model listen to its conditions?).

    x_sigma = (1 - sigma) * x0 + sigma * noise        (add_noise)        v = noise - x0       (flow_target)
    sigma = shift * u / (1 + (shift - 1) * u)         (shift_sigmas, sample_sigmas: Wan's shifted schedule)

Every random draw of a training step is a pure function of (seed, step, sample position in the global batch)
(sample_rng, batch_indices, batch_share): that is what makes resume exact and N processes equal one.

    make_batch / StepBatches    step k's noised batch on the host (DataLoader workers can build it ahead)
    DeviceBatches               the same on the device, every encoded clip resident there
    predict, flow_loss          the model's velocity and the (sigma-weighted) MSE
    condition_gaps              the loss with each condition replaced: near-0 gaps = that condition is ignored

Split out of train.py (issue 11): train.py is the loop (accelerate, checkpoints, logging, the command).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .config import TrainConfig
from .utils import V4SError, to_device_async


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


# ------------------------------------------------------------------------------------------- batches
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
        # positions resident too (the model builds each batch's RoPE positions from them on the device); the host
        # copy is for the one range check of all clips (model.check_positions, in train)
        self.host_positions = torch.stack([torch.as_tensor(it["context_positions"]) for it in items])
        self.positions = self.host_positions.to(self.device)
        self.n_noisy = self.target.shape[2] - 1

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
        dev_idx = to_device_async(idx, self.device)
        tgt = self.target[dev_idx]
        x0, first = tgt[:, :, 1:], tgt[:, :, :1]
        noise = torch.randn(x0.shape, generator=g, device=self.device)
        sigma = sample_sigmas(b, cfg, g)
        d = drop_conditions(self.text[dev_idx], self.context[dev_idx], self.null_text[None], p_text=cfg.p_drop_text,
                            p_context=cfg.p_drop_context, p_both=cfg.p_drop_both, generator=g)
        return {"context": d.context_latents, "first": first, "noisy": add_noise(x0, noise, sigma), "sigma": sigma,
                "text": d.text_emb, "positions": self.positions[dev_idx], "velocity": flow_target(x0, noise)}


def predict(model, batch: dict, device, dtype=None) -> torch.Tensor:
    """The model's velocity for the noisy target latents (timestep = sigma * 1000, diffusers' scale).
    Host tensors (a DataLoader's pinned batch) are copied without a blocking `.to(device)`: each such copy waits
    for the GPU to finish everything queued, so the host could not queue this step while the last one ran."""
    mv = lambda x: to_device_async(x, device).to(dtype or x.dtype)  # noqa: E731
    t = to_device_async(batch["sigma"], device) * 1000
    return model(mv(batch["context"]), mv(batch["first"]), mv(batch["noisy"]), t, mv(batch["text"]),
                 context_positions=batch["positions"])


def flow_loss(model, batch: dict, cfg: TrainConfig, accelerator, dtype=None) -> torch.Tensor:
    """The batch's mean (sigma-weighted) flow-matching MSE."""
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    with accelerator.autocast():
        pred = predict(model, batch, accelerator.device, dtype)
    err = (pred.float() - to_device_async(batch["velocity"], pred.device)) ** 2  # not blocking (see predict)
    weight = compute_loss_weighting_for_sd3(cfg.weighting_scheme, to_device_async(batch["sigma"], err.device))
    return (weight * err.flatten(1).mean(1)).mean()


# ----------------------------------------------------------------------------------- does the model listen?
CONDITION_PROBES = ("true", "other instruction", "null instruction", "other room's context", "noise context",
                    "shuffled context chunks")


GAP_SIGMAS = (0.3, 0.5, 0.7, 0.9)  # condition_gaps' noise levels: from where the walk is mostly visible to mostly noise


@torch.no_grad()
def condition_gaps(model, items, null_text, sigmas=GAP_SIGMAS, seed: int = 0, device="cpu") -> dict:
    """How much each condition helps the model denoise: its flow-matching loss on held-out encoded clips
    (`latents.encode_clips` items) with the true conditions, and with each condition replaced.

    A model that uses the instruction denoises worse with another clip's instruction; one that uses the room
    denoises worse with another room's context. A gap near 0 means that condition is ignored: the paper's
    "weak context" failure, measured in seconds on a CPU instead of by sampling and scoring videos.
    Same noise and sigma for every probe of a clip (paired), so the gaps are not noise. Needs >= 2 items.
    "shuffled context chunks" keeps the room and moves each context chunk to its neighbour's position: the gap of a
    model that uses where each view sits in the scan, not only what it shows (0 with a single chunk).
    Returns {probe: mean loss} and {probe + " gap": mean (loss - true loss) / true loss}, and per noisy latent frame
    of the target (the walk's, in order: the last ones are the destination and its box frames)
    {probe + " gap by frame": [gap of frame 1, 2, ...]}: an average gap can hide a condition that matters only
    where the walk ends.
    """

    if len(items) < 2:
        raise V4SError("condition_gaps needs at least 2 clips: the 'other' probes borrow the next clip's conditions")
    losses = {p: [] for p in CONDITION_PROBES}
    by_frame = {p: [] for p in CONDITION_PROBES}  # per (clip, sigma): the loss of each noisy latent frame
    g = torch.Generator().manual_seed(seed)
    for i, it in enumerate(items):
        other = items[(i + 1) % len(items)]
        tgt = it["target_latents"].float()[None]
        x0, first = tgt[:, :, 1:], tgt[:, :, :1]
        ctx = it["context_latents"].float()[None]
        pos = torch.as_tensor(it["context_positions"]).tolist()  # computed once, by the data layer
        probes = {"true": (it["prompt_embeds"], ctx), "other instruction": (other["prompt_embeds"], ctx),
                  "null instruction": (null_text, ctx),
                  "other room's context": (it["prompt_embeds"], other["context_latents"].float()[None]),
                  "noise context": (it["prompt_embeds"], torch.randn(ctx.shape, generator=g)),
                  # the same room's views, each chunk at its neighbour's place in the scan (frame 0 stays): a
                  # model that reads only *what* the room holds is unmoved; one that uses *where* each view was
                  # taken (the chunks' RoPE positions) is not. Drawn from no generator: the other probes' numbers
                  # are those of the four-probe tool
                  "shuffled context chunks": (it["prompt_embeds"],
                                              torch.cat([ctx[:, :, :1], ctx[:, :, 1:].roll(1, dims=2)], dim=2))}
        if probes["other room's context"][1].shape != ctx.shape:
            raise V4SError("condition_gaps needs clips of one clip config (the context shapes differ)")
        names = list(probes)
        text = _pad_text([torch.as_tensor(t).float() for t, _ in probes.values()]).to(device)
        ctxs = torch.cat([c for _, c in probes.values()]).to(device)
        for s in sigmas:  # the probes of one sigma are one batch: same noise, one forward
            noise = torch.randn(x0.shape, generator=g)
            xt, v = add_noise(x0, noise, torch.tensor([s])), flow_target(x0, noise)
            k = len(names)
            pred = model(ctxs, first.expand(k, -1, -1, -1, -1).to(device), xt.expand(k, -1, -1, -1, -1).to(device),
                         s * 1000.0, text, context_positions=pos)
            err = (pred.float().cpu() - v).square()  # (probe, C, F, H, W)
            frames = err.mean((1, 3, 4))  # (probe, F): every frame has as many values, so their mean is the loss
            for name, e, f in zip(names, err.flatten(1).mean(1).tolist(), frames.numpy()):
                losses[name].append(e)
                by_frame[name].append(f)
    out = {p: float(np.mean(v)) for p, v in losses.items()}
    true, true_f = np.array(losses["true"]), np.array(by_frame["true"])
    for p in CONDITION_PROBES[1:]:
        out[p + " gap"] = float(np.mean((np.array(losses[p]) - true) / true))
        out[p + " gap by frame"] = [float(x) for x in np.mean((np.array(by_frame[p]) - true_f) / true_f, axis=0)]
    return out

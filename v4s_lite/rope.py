"""Non-contiguous RoPE: give every latent frame an explicit temporal position.

Wan's 3D RoPE splits each attention head's dims into three groups: time (t), height (h), width (w)
(44/42/42 for head_dim 128), each rotated by its own 1D rotary table. diffusers' `WanRotaryPosEmbed`
always uses time positions 0..F-1: the sequence is assumed to be one contiguous video.

Video4Spatial feeds a *non-contiguous* context: chunks of 4 frames sampled from a long scan. Each context
latent keeps the position of the scan frames it came from (`start_frame // 4`), so the model sees how far
apart two chunks were in the scan. The target (its clean first frame, then the noisy latents) comes after the
context, by one of two rules (the paper publishes neither):
  "after_context" (target_start=None): `gap` after the *last sampled* chunk. Then the target's distance to scan
      frame 0 depends on which chunks were drawn, and a context of fewer chunks (or none) puts the target at
      positions training never used: a context-length curve measures the shift as much as the context.
  "after_scan" (target_start = the scan's last chunk slot + gap, `target_start_after_scan`): the target always
      starts at the same position, after the whole scan, however many chunks are drawn. The course's lite model
      trains this way (configs/lite.yaml `rope_target: after_scan`) so that context length at inference changes
      only the context. A context longer than the training scan still pushes the target after its last chunk.
Because RoPE only sees position *differences* inside attention (q_i . k_j depends on p_i - p_j), shifting every
position by a constant changes nothing: only the layout matters.

`ContextRoPE` is a drop-in for `transformer.rope`: the same tables (it *is* a `WanRotaryPosEmbed`), indexed by
explicit temporal positions set with `set_positions` before the transformer's forward (`V4SModel` does this).
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from .sampling import context_positions, n_chunk_slots  # noqa: F401  (context_positions: the data layer computes it)
from .utils import V4SError, to_device_async

# Default distance (in latent positions) between the last context latent and the target's first latent.
# 1 = "the target is the next latent after the context": the target clip is a new camera walk, not a
# continuation of the scan in real time, so no real gap exists to encode; keeping it at 1 makes the
# context-to-target distance the same in training and inference whatever the scan length, and uses the
# fewest table positions. It is a setting (V4SModel(rope_gap=...)) because the paper does not publish it.
DEFAULT_GAP = 1


class ContextRoPE(WanRotaryPosEmbed):
    """diffusers' Wan rotary embedding with explicit temporal positions per latent frame.

    Positions: `None` (default) -> 0..F-1, exactly diffusers' behaviour; a 1D sequence of F ints -> shared by
    the whole batch (joint-CFG passes share one layout); a (B, F) tensor -> one layout per sample (training
    batches whose clips sampled different context chunks). The h/w positions are 0..h-1, 0..w-1 as in diffusers.
    """

    def __init__(self, attention_head_dim: int, patch_size, max_seq_len: int = 1024, theta: float = 10000.0):
        super().__init__(attention_head_dim, tuple(patch_size), max_seq_len, theta)
        self.theta = theta
        self.frame_positions: torch.Tensor | None = None

    @classmethod
    def from_rope(cls, rope: WanRotaryPosEmbed, max_seq_len: int | None = None) -> "ContextRoPE":
        """Replace a transformer's `rope` child; `max_seq_len` builds a longer table (default: keep its length)."""
        new = cls(rope.attention_head_dim, rope.patch_size, max_seq_len or rope.max_seq_len)
        return new.to(rope.freqs_cos.device)

    def set_positions(self, frame_positions) -> None:
        """Temporal positions of the next forward's latent frames (after patching): (F,), (B, F) or None."""
        if frame_positions is None:
            self.frame_positions = None
            return
        pos = torch.as_tensor(frame_positions, dtype=torch.long)
        if pos.ndim not in (1, 2):
            raise V4SError(f"frame positions must be (F,) or (batch, F); got shape {tuple(pos.shape)}")
        # checked here when they come from the host; positions resident on a GPU are checked once for all clips
        # where they are made resident (train.DeviceBatches): a check here would stall every step on the GPU
        if pos.device.type == "cpu" and pos.numel() and (pos.min() < 0 or pos.max() >= self.max_seq_len):
            raise V4SError(
                f"RoPE position {int(pos.max() if pos.max() >= self.max_seq_len else pos.min())} is outside the "
                f"table of {self.max_seq_len} positions (0..{self.max_seq_len - 1}). Use fewer/closer context frames, "
                f"or build a longer table: V4SModel(transformer, rope_max_seq_len=...) or "
                f"ContextRoPE.from_rope(rope, max_seq_len=...)."
            )
        self.frame_positions = pos

    def forward(self, hidden_states: torch.Tensor):
        batch, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.patch_size
        ppf, pph, ppw = num_frames // p_t, height // p_h, width // p_w
        if max(pph, ppw) > self.max_seq_len:
            raise V4SError(f"a latent frame of {pph}x{ppw} patches exceeds the RoPE table ({self.max_seq_len})")

        pos = self.frame_positions
        if pos is None:
            pos = torch.arange(ppf)
        if pos.shape[-1] != ppf:
            raise V4SError(
                f"{pos.shape[-1]} temporal positions were set but the input has {ppf} latent frames; "
                "call set_positions with one position per latent frame (context + first + noisy)."
            )
        if pos.ndim == 2 and pos.shape[0] != batch:
            raise V4SError(f"positions for {pos.shape[0]} samples but the batch has {batch}")
        pos = to_device_async(pos, self.freqs_cos.device).reshape(-1, ppf)  # (1 or B, F)

        def table(freqs):
            f_t, f_h, f_w = freqs.split([self.t_dim, self.h_dim, self.w_dim], dim=1)
            n = pos.shape[0]
            t = f_t[pos].view(n, ppf, 1, 1, -1).expand(n, ppf, pph, ppw, -1)
            h = f_h[:pph].view(1, 1, pph, 1, -1).expand(n, ppf, pph, ppw, -1)
            w = f_w[:ppw].view(1, 1, 1, ppw, -1).expand(n, ppf, pph, ppw, -1)
            return torch.cat([t, h, w], dim=-1).reshape(n, ppf * pph * ppw, 1, -1)

        return table(self.freqs_cos), table(self.freqs_sin)


def target_positions(last_context_position: int, n_target_latents: int, gap: int = DEFAULT_GAP,
                     target_start: int | None = None) -> list[int]:
    """Positions of the target's latents (clean first + noisy): they continue `gap` after the last context latent,
    or from `target_start` (the "after_scan" rule) when that is later."""
    if gap < 1:
        raise V4SError(f"gap={gap} would put the target on top of the context; use gap >= 1")
    start = last_context_position + gap
    if target_start is not None:
        start = max(start, int(target_start))
    return list(range(start, start + n_target_latents))


def target_start_after_scan(scan_frames: int, gap: int = DEFAULT_GAP) -> int:
    """The "after_scan" rule's fixed target start: `gap` after the scan's last 4-frame chunk slot
    (sampling.n_chunk_slots), e.g. 31 + 1 = 32 for the LITE scan of 129 frames."""
    return n_chunk_slots(scan_frames) + gap


def sequence_positions(context_pos: Sequence[int], n_target_latents: int, gap: int = DEFAULT_GAP,
                       target_start: int | None = None) -> list[int]:
    """The whole sequence's temporal positions: `context_pos` then the target after it (target_positions)."""
    context_pos = list(context_pos)
    last = context_pos[-1] if context_pos else -gap  # no context: the target starts at 0 (or target_start)
    return context_pos + target_positions(last, n_target_latents, gap, target_start)


def sequence_positions_batch(rows: torch.Tensor, n_target_latents: int, gap: int = DEFAULT_GAP,
                             target_start: int | None = None) -> torch.Tensor:
    """sequence_positions for every row of context positions (B, Fc) at once, in tensor ops on the rows' device
    (the model's forward): positions resident on the GPU never make a host round trip, which would stall every
    training step. Returns (B, Fc + n_target_latents)."""
    if gap < 1:
        raise V4SError(f"gap={gap} would put the target on top of the context; use gap >= 1")
    last = rows[:, -1:] if rows.shape[1] else torch.full((rows.shape[0], 1), -gap, device=rows.device)
    start = last + gap
    if target_start is not None:
        start = start.clamp(min=int(target_start))
    return torch.cat([rows, start + torch.arange(n_target_latents, device=rows.device)], dim=1)

"""Clip shapes: how many frames the context, the target and the box frames have.

The paper's numbers and the lite course's numbers are two configurations of the same code.
Every count is 1 + 4k because the Wan VAE compresses time 4x causally: the first frame is
encoded alone, then every 4 frames become one latent frame.

    paper (inference): context 1 + 84*4 = 337 frames, target 1 + 45*4 = 181 = 161 + 20 box frames
    paper (training):  context 1 + 42*4 = 169 frames  -> 43 + 46 latent frames = 9,256 tokens at 416x256
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

TEMPORAL_STRIDE = 4  # frames per latent frame (Wan VAE); context chunks are this long
# LoRA on the attention (self + cross) and FFN projections of diffusers' WanTransformerBlock. Here, not in
# train.py, because the memory arithmetic (budget.py) prices the same list before any training code loads.
WAN_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]


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


def get_clip_config(name_or_cfg) -> ClipConfig:
    if isinstance(name_or_cfg, ClipConfig):
        return name_or_cfg
    try:
        return PRESETS[name_or_cfg]
    except KeyError:
        raise ValueError(f"unknown clip preset {name_or_cfg!r}; choose one of {sorted(PRESETS)}") from None

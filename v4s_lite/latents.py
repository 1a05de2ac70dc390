"""Clips as the training loop reads them (notebooks 05 and 10): latents and instruction embeddings, computed
once by the encoders, kept in memory or in a folder on disk.

    encode_clip           one ClipDataset item -> context/target latents, instruction embedding, frame indices
    write_latent_cache    encoded items -> a folder (one safetensors file per item), manifest written last
                          (= start_latent_cache, write_cache_items per rank, finish_latent_cache on rank 0)
    cache_clips           encode_clip over a dataset + write_latent_cache (the Wan2.2 path frees its encoders after)
    LatentCache           that folder as a torch Dataset
    OnDevice              a codec whose input is moved to its device first
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .bbox import bbox_frames
from .codec import frames_to_video
from .utils import V4SError

CACHE_VERSION = 1


def _to_video(frames) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (1, 3, F, H, W) in [-1, 1], the codecs' input."""
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
        target = bbox_frames(torch.as_tensor(target).numpy(), torch.as_tensor(item["boxes"]).numpy(), box_frames)
    idx = torch.as_tensor(item.get("context_frame_indices", range(len(item["context"]))), dtype=torch.long)
    return {"context_latents": codec.encode(_to_video(item["context"]))[0].contiguous().cpu(),
            "target_latents": codec.encode(_to_video(target))[0].contiguous().cpu(),
            "prompt_embeds": text_encoder.encode([item["instruction"]])[0].contiguous().cpu(),
            "context_frame_indices": idx.contiguous(), "instruction": item["instruction"]}


_ITEM_KEYS = ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices")


def write_latent_cache(folder, items, null, n: int) -> Path:
    """`n` encode_clip items (any iterable: written as they come) and the null ("") embedding -> the folder
    LatentCache reads: one safetensors file per item, then `null.safetensors` and `cache.json` (count, shapes, a
    fingerprint of the null embedding) written last, so an interrupted write is never read as complete.
    Several processes fill one folder in two parts: every rank write_cache_items(its items), a barrier, then
    rank 0 finish_latent_cache (train.encode_clips does this)."""
    folder = Path(folder)
    start_latent_cache(folder)
    count = write_cache_items(folder, enumerate(items))
    if count != n:
        raise V4SError(f"write_latent_cache: expected {n} items, got {count}")
    return finish_latent_cache(folder, null, n)


def start_latent_cache(folder) -> Path:
    """Make the folder and drop an old manifest: from here until finish_latent_cache it is not a cache."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cache.json").unlink(missing_ok=True)
    return folder


def item_file(folder, i: int) -> Path:
    return Path(folder) / f"{i:06d}.safetensors"


def write_cache_items(folder, indexed_items) -> int:
    """(global index, encode_clip item) pairs -> one `{index:06d}.safetensors` each, written as they come; returns
    how many were written. Any process may write any index: the file holds only that item."""
    from safetensors.torch import save_file

    count = 0
    for i, item in indexed_items:
        save_file({k: torch.as_tensor(item[k]).contiguous() for k in _ITEM_KEYS}, str(item_file(folder, i)),
                  metadata={"instruction": item["instruction"]})
        count += 1
    return count


def finish_latent_cache(folder, null, n: int) -> Path:
    """After every item file 0..n-1 is on disk: `null.safetensors`, then `cache.json` (the shapes are the last
    item's), which makes the folder a LatentCache. A missing item file -> V4SError, and no manifest."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    missing = [i for i in range(n) if not item_file(folder, i).exists()]
    if missing:
        raise V4SError(f"{folder}: item files {missing[:5]}{'...' if len(missing) > 5 else ''} are missing "
                       f"({len(missing)} of {n}); the cache is left incomplete (no cache.json)")
    null = null.contiguous().cpu()
    save_file({"prompt_embeds": null}, str(folder / "null.safetensors"))
    with safe_open(str(item_file(folder, n - 1)), "pt") as f:
        shapes = {k: list(f.get_slice(k).get_shape()) for k in _ITEM_KEYS[:3]}
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


class OnDevice:
    """A codec whose input video is moved to `device` first (the cache is written from the CPU side)."""

    def __init__(self, codec, device):
        self.codec, self.device = codec, device

    def encode(self, video):
        return self.codec.encode(video.to(self.device))

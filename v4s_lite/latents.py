"""Clips as the training loop reads them (notebooks 05 and 10): latents and instruction embeddings, computed
once by the encoders, kept in memory or in a folder on disk.

    encode_clip           one ClipDataset item -> context/target latents, instruction embedding, frame indices
    write_latent_cache    encoded items -> a folder (one safetensors file per item), manifest written last
                          (= start_latent_cache, write_cache_items per rank, finish_latent_cache on rank 0)
    cache_clips           encode_clip over a dataset + write_latent_cache (the Wan2.2 path frees its encoders after)
    LatentCache           that folder as a torch Dataset
    OnDevice              a codec whose input is moved to its device first
    encode_clips          a run's items: every clip of cfg.data_root encoded once (DataLoader workers decode, and
                          on a CPU encode), kept in memory or in cfg.latent_cache (filled in one pass by N processes)
    prepare_items         (items, null_text) for train(): the encoders built only when the cache must be filled

encode_clip is the one encoder: training (the whole target, box frames drawn) and sampling (sample.sampling_inputs:
the target's first frame only) both go through it, so both read the same item keys (docs/DESIGN.md, "Items").
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .bbox import bbox_frames
from .codec import build_codecs, frames_to_video
from .config import TrainConfig
from .sampling import context_positions
from .utils import V4SError

CACHE_VERSION = 1


def _to_video(frames) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (1, 3, F, H, W) in [-1, 1], the codecs' input."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise V4SError(f"frames must be uint8 (F, H, W, 3); got {x.dtype} {tuple(x.shape)}")
    return frames_to_video(x)


@torch.no_grad()
def encode_clip(item, codec, text_encoder, box_frames: int = 0, *, first_only: bool = False, device=None) -> dict:
    """The one clip encoder, for training and sampling: a ClipDataset item (`context`, `target` uint8 (F,H,W,3),
    `instruction`, `context_frame_indices`, `context_positions`) -> an encoded item (the schema in docs/DESIGN.md):

        context_latents (C, Fc, h, w)   target_latents (C, Ft, h, w) (index 0: the clean first latent)
        prompt_embeds (L, D)            context_frame_indices (Fc,)   context_positions (Fc,)   instruction

    on the CPU, in the codec's dtype. `box_frames` > 0 draws the red box on the last frames of a grounding target
    first (bbox.bbox_frames); navigation targets have no object to box. `first_only`: encode only the target's
    first frame (sampling generates the rest; the causal codecs make it latent 0 on its own), so
    target_latents is (C, 1, h, w). `device`: where the codec runs (the frames are moved there first).
    An empty context (the first-frame-only ablation) gives (C, 0, h, w) context latents."""
    missing = [k for k in ("context", "target", "instruction") if k not in item]
    if missing:
        raise V4SError(f"a clip lacks {missing}; the encoders read ClipDataset items")
    target = item["target"][:1] if first_only else item["target"]
    if box_frames and not first_only and item.get("meta", {}).get("task") == "grounding":
        target = bbox_frames(torch.as_tensor(target).numpy(), torch.as_tensor(item["boxes"]).numpy(), box_frames)
    idx = torch.as_tensor(item.get("context_frame_indices", range(len(item["context"]))), dtype=torch.long)
    positions = item.get("context_positions")
    if positions is None:  # an item not made by ClipDataset (tests, hand-built examples)
        positions = context_positions(idx)
    def encode(frames):
        video = _to_video(frames)
        return codec.encode(video if device is None else video.to(device))

    target_latents = encode(target)[0]
    if len(item["context"]):
        context_latents = encode(item["context"])[0]
    else:  # no context at all: an empty latent sequence
        context_latents = target_latents.new_zeros(target_latents.shape[0], 0, *target_latents.shape[2:])
    return {"context_latents": context_latents.contiguous().cpu(), "target_latents": target_latents.contiguous().cpu(),
            "prompt_embeds": text_encoder.encode([item["instruction"]])[0].contiguous().cpu(),
            "context_frame_indices": idx.contiguous(),
            "context_positions": torch.as_tensor(positions, dtype=torch.long).contiguous(),
            "instruction": item["instruction"]}


_ITEM_KEYS = ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices")


def write_latent_cache(folder, items, null, n: int) -> Path:
    """`n` encode_clip items (any iterable: written as they come) and the null ("") embedding -> the folder
    LatentCache reads: one safetensors file per item, then `null.safetensors` and `cache.json` (count, shapes, a
    fingerprint of the null embedding) written last, so an interrupted write is never read as complete.
    Several processes fill one folder in two parts: every rank write_cache_items(its items), a barrier, then
    rank 0 finish_latent_cache (encode_clips does this)."""
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
    > 0 draws the red box on the last frames of grounding targets first, as encode_clips does. Free the
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
        item["context_positions"] = torch.as_tensor(context_positions(item["context_frame_indices"]), dtype=torch.long)
        return item


class OnDevice:
    """A codec whose input video is moved to `device` first (the cache is written from the CPU side)."""

    def __init__(self, codec, device):
        self.codec, self.device = codec, device

    def encode(self, video):
        return self.codec.encode(video.to(self.device))


# ------------------------------------------------------------------------- a run's items (train.py reads them)
class _EncodedClips(torch.utils.data.Dataset):
    """ClipDataset items through latents.encode_clip, so that DataLoader workers do all of a clip's work
    (decoding is the slow part, encoding is not free either)."""

    def __init__(self, ds, codec, text_encoder, box_frames: int):
        self.ds, self.codec, self.text_encoder, self.box_frames = ds, codec, text_encoder, box_frames

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return _float32(encode_clip(self.ds[i], self.codec, self.text_encoder, self.box_frames))


def _as_made(item):  # no collation: the item as ClipDataset makes it (a function, so workers can pickle it)
    return item


def _float32(item: dict) -> dict:
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in item.items()}


def encoded_items(ds, indices, codec, text_encoder, box_frames: int, num_workers: int, encode_in_workers=True):
    """encode_clip of ds[i] for i in indices, in order, as an iterator. `num_workers` DataLoader processes decode
    the clips; with encode_in_workers they encode them too (a CPU codec), otherwise this process encodes what
    they hand back (a codec on the GPU, which worker processes cannot share). Both give the same items."""
    subset = torch.utils.data.Subset(ds, indices)
    if encode_in_workers:
        return iter(torch.utils.data.DataLoader(_EncodedClips(subset, codec, text_encoder, box_frames),
                                                batch_size=None, num_workers=num_workers))
    decoded = torch.utils.data.DataLoader(subset, batch_size=None, num_workers=num_workers,
                                          collate_fn=_as_made)
    return (_float32(encode_clip(x, codec, text_encoder, box_frames)) for x in decoded)


def latent_cache_folder(cfg: TrainConfig, n: int) -> Path:
    """Where encode_clips keeps its result (a latents.LatentCache folder): one per setting that changes the items,
    and per set of clips under data_root (their names and meta.json files)."""
    import hashlib

    key = {k: getattr(cfg, k) for k in ("data_root", "clip", "sampling", "box_frames", "context_views", "max_clips",
                                        "seed", "codec", "text_encoder")}
    key["n_clips"] = n
    # which clips, not only how many: clips rendered again into the same folder (other seeds, another `--end`) must not
    # find the latents of the ones they replaced (a GPU machine can keep an earlier session's folders). Each clip's
    # name and meta.json (its seed, room and walk) go into the key: ~1 s for 10,000 clips
    from .data import clip_folders

    clips = hashlib.sha1()
    for folder in clip_folders(cfg.data_root):
        clips.update(folder.name.encode() + b"\0" + (folder / "meta.json").read_bytes())
    key["clips"] = clips.hexdigest()
    if cfg.wan is not None:  # another VAE or text encoder makes other latents
        key["wan"] = {"source": cfg.wan.source, "text_encoder": cfg.wan.text_encoder}
    if not isinstance(cfg.clip, str):  # a custom ClipConfig: its fields are the key (a preset keeps its name, so
        key["clip"] = cfg.clip.to_dict()  # the folders of earlier runs are still found)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.latent_cache) / f"latents-{cfg.clip_name}-{cfg.sampling}-box{int(cfg.box_frames)}-{digest}"


def n_clips(cfg: TrainConfig) -> int:
    """How many clips of data_root a run trains on (max_clips caps it)."""
    from .data import clip_folders

    root = Path(cfg.data_root)
    if not root.exists():
        raise V4SError(f"data_root {root} does not exist: make clips first, e.g. "
                       f"`v4s make-data --out {root} --task grounding --scenes 8 --clip-config {cfg.clip_name}`")
    n_all = len(clip_folders(root))
    if n_all == 0:
        raise V4SError(f"data_root {root} holds no clip folders: make clips with `v4s make-data --out {root}`")
    return n_all if not cfg.max_clips else min(cfg.max_clips, n_all)


# long (~65 lines): the cache's one-pass fill by N processes (manifest dropped, shards, barriers, manifest) in one place
def encode_clips(cfg: TrainConfig, codec=None, text_encoder=None, device="cpu"):
    """Pre-encode every clip once: a training step should cost only the transformer.

    Items have the keys of latents.LatentCache (so the big model's disk cache trains through the same loop):
    `context_latents` (C, Fc, h, w), `target_latents` (C, Ft, h, w) (index 0 is the clean first latent),
    `prompt_embeds` (L, D), `context_frame_indices` (source frame of each context frame), `instruction`.
    With context_views > 1 each clip is encoded with several context samplings (different chunks).
    With `cfg.latent_cache` set, the result is written there as a latents.LatentCache folder (named by every
    setting that changes the items, so a stale cache is never read) and every later run with the same data
    settings (the variants of one experiment, every --resume, every rank) reads it instead of decoding again.

    Under several processes (accelerate launch / torchrun) a missing cache is filled in one pass: process r
    encodes items j with j % world == r (cache_shard) and writes their files, then, after a barrier, rank 0 writes
    the null embedding and the manifest (latents.finish_latent_cache), and every process reads the whole cache.
    Returns a list of items, or, for a `wan:` run with a cache, the LatentCache itself (5B clips stay on disk).
    codec / text_encoder: None = built from cfg (codec.build_codecs), and only when the cache must be filled:
    Wan2.2's UMT5-XXL (~11 GB) is never loaded for a run whose cache is complete.
    """
    from .data import ClipDataset

    clip_cfg = cfg.clip_config
    root = Path(cfg.data_root)
    n = n_clips(cfg)
    cache = latent_cache_folder(cfg, n) if cfg.latent_cache else None
    if cache is not None and (cache / "cache.json").exists():
        return _read_cache(cache, n, cfg)
    from tqdm.auto import tqdm

    if codec is None or text_encoder is None:
        codec, text_encoder = build_codecs(cfg)
    ds = ClipDataset(root, clip_cfg, sampling=cfg.sampling, seed=cfg.seed)
    box = clip_cfg.box_frames if cfg.box_frames else 0
    on_cpu = torch.device(device).type == "cpu"
    if cfg.num_workers:  # workers hand clips back through shared memory files, not one descriptor each
        torch.multiprocessing.set_sharing_strategy("file_system")
    # with a cache, each process encodes its share of the items (item j = view j // n, clip j % n) and writes
    # them straight to the folder; without one, every process needs every item in memory
    world, rank, barrier = _processes() if cache is not None else (1, 0, None)
    if cache is not None and rank == 0:
        start_latent_cache(cache)
    if barrier is not None:  # nobody writes an item before rank 0 has dropped an old manifest
        barrier()
    items, written = [], 0
    for view in range(cfg.context_views):
        ds.set_epoch(view)  # a fresh draw of the context chunks
        mine = [i for i in range(n) if cache is None or cache_shard(view * n + i, world) == rank]
        # on a CPU each worker decodes and encodes whole clips; a GPU codec stays in this process, and the
        # workers only decode (one process decoding 8,000 clips left an H200 idle for minutes)
        loader = encoded_items(ds, mine, codec if on_cpu else OnDevice(codec, device), text_encoder, box,
                               cfg.num_workers, encode_in_workers=on_cpu)
        encoded = tqdm(loader, total=len(mine), desc=f"encode clips (view {view + 1}/{cfg.context_views})",
                       disable=not cfg.progress or rank != 0)
        if cache is None:
            items += list(encoded)
        else:
            written += write_cache_items(cache, zip((view * n + i for i in mine), encoded))
    if cache is None:
        return items
    if barrier is not None:  # every rank's item files are on disk before the manifest says the cache is complete
        barrier()
    if rank == 0:
        finish_latent_cache(cache, text_encoder.encode([""])[0], n * cfg.context_views)
    if barrier is not None:
        barrier()
    return _read_cache(cache, n, cfg)


def cache_shard(j: int, world: int) -> int:
    """The process that encodes item j of a latent cache filled by `world` processes."""
    return j % world


def _processes():
    """(world, rank, barrier) of the processes this one was launched with (accelerate launch / torchrun; the
    Accelerator's state when train() made one); barrier is None for a single process."""
    from accelerate import PartialState

    state = PartialState()
    return state.num_processes, state.process_index, (state.wait_for_everyone if state.num_processes > 1 else None)


def _read_cache(cache: Path, n: int, cfg: TrainConfig):
    saved = LatentCache(cache)
    if len(saved) != n * cfg.context_views:
        raise V4SError(f"{cache} holds {len(saved)} items, expected {n} clips x {cfg.context_views} views: "
                       "delete it and run again")
    return saved if cfg.wan is not None else [saved[i] for i in range(len(saved))]


def prepare_items(cfg: TrainConfig, device="cpu"):
    """(items, null_text) for train(): encode_clips with the run's own codecs, built only when the cache must be
    filled and dropped before the model is built (a GPU holds the 5B transformer or UMT5-XXL, rarely both)."""
    import gc

    cache = latent_cache_folder(cfg, n_clips(cfg)) if cfg.latent_cache else None
    codec = text_encoder = None
    if cache is None or not (cache / "cache.json").exists():
        codec, text_encoder = build_codecs(cfg)
    items = encode_clips(cfg, codec, text_encoder, device=device)
    null_text = (LatentCache(cache).null_embeds if cache is not None else text_encoder.encode([""])[0]).float().cpu()
    del codec, text_encoder
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return items, null_text

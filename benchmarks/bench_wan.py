"""Wan2.2-TI2V-5B: our training step and denoising step against stock diffusers, at the same shapes, in one run.

    python benchmarks/bench_wan.py --out results/bench_wan_h100                       # on the GPU (~8 min)
    python benchmarks/bench_wan.py --model tiny --width 64 --height 64 --context-latents 3 --target-latents 3 \
        --warmup 1 --iters 2 --out /tmp/bench_tiny                                     # CPU smoke run

Randomly initialised weights of the exact architecture (no weights can be downloaded on the GPU machine):
speed and memory do not depend on the values. Shapes default to the paper's training setting: 416x256,
43 context + 46 target latents = 9,256 tokens, batch 1, LoRA rank 32 on attention + FFN.

`train_*` rows time the bare training step (forward, loss, backward, AdamW); `loop_*` rows time the full
`wan-train` step, the training loop itself (train.train: autocast, fp32 adapters, condition dropout, a batch
built on the host, clipping, a log row per step) on --loop-config with the benchmark's random base.

Every variant changes one lever against the stock baseline measured in the same run, and prints seconds,
tokens/s, model FLOPs utilisation (v4s_lite.budget.transformer_flops; training = 3x forward) and peak memory.
Results: <out>.json (every number, the command, the GPU) and <out>.md (the table). The JSON is rewritten
after every variant, so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from v4s_lite.attention import ContextCache
from v4s_lite.budget import GPUS, estimate_memory, latent_tokens, transformer_flops
from v4s_lite.config import WAN_LORA_TARGETS, load_config, parse_override
from v4s_lite.full import configure_speed
from v4s_lite.fp8 import fits_fp8, fp8_base, restore_base
from v4s_lite.model import transformer_config
from v4s_lite.profiling import StepProfiler, format_summary
from v4s_lite.rope import ContextRoPE

TRAIN_TARGET_RATIO, TRAIN_TARGET_GB, SMALL_GPU_GB, DENOISE_TARGET_RATIO = 0.75, 40.0, 24.0, 0.5
# issue 14's goals against DiffSynth-Studio's own DiT measured in the same run (peer_diffsynth.py): the training
# step <= 0.6x its step at <= 22 GB; guided denoising <= 0.5x its two passes, with full attention (no context reuse)
PEER_TRAIN_RATIO, PEER_TRAIN_GB, PEER_DENOISE_RATIO = 0.6, 22.0, 0.5


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, warmup: int, iters: int) -> list[float]:
    """Seconds per call: warm-up calls first (compilation, autotuning, allocator), then `iters` timed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


@contextlib.contextmanager
def fp8_swapped(model, device, on: bool = True):
    """The model's block projections in FP8 for the `with` block (v4s_lite.fp8), then back. The bf16 originals
    wait on the CPU meanwhile, so a variant's peak memory is the FP8 model's own."""
    swapped = fp8_base(model, device=device) if on else {}
    for base in swapped.values():
        base.to("cpu")
    try:
        yield
    finally:
        for base in swapped.values():
            base.to(device)
        restore_base(swapped)


def reset_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None


def gpu_peak_tflops(device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name()
    for key, spec in GPUS.items():
        if key.split()[0] in name:
            return name, spec["bf16_tflops"]
    return name, 989.4 if "H200" in name else None


def measured_matmul_tflops(device) -> float | None:
    if device.type != "cuda":
        return None
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    t = timed(lambda: a @ b, device, 3, 10)
    return 2 * 8192**3 / statistics.median(t) / 1e12


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.cfg = transformer_config(args.model)
        if args.wan_source:  # the loop variants load this folder's transformer: every variant uses its architecture
            from diffusers import WanTransformer3DModel

            self.cfg = {k: v for k, v in WanTransformer3DModel.load_config(args.wan_source, subfolder="transformer")
                        .items() if not k.startswith("_")}
        self.h, self.w = args.height // 16, args.width // 16  # Wan2.2 VAE: 16x16 spatial compression
        self.fc, self.ft = args.context_latents, args.target_latents
        self.tokens = latent_tokens(self.cfg, args.width, args.height, self.fc + self.ft)
        self.ctx_tokens = latent_tokens(self.cfg, args.width, args.height, self.fc)
        self.gpu, self.peak = gpu_peak_tflops(self.device)
        self.results = {"command": " ".join(["python"] + sys.argv), "gpu": self.gpu, "torch": torch.__version__,
                        "weights": "random initialisation of the exact architecture (nothing can be downloaded)",
                        "model": args.model, "shape": dict(width=args.width, height=args.height,
                        context_latents=self.fc, target_latents=self.ft, tokens=self.tokens, batch=1,
                        lora_rank=args.lora_rank, lora_targets=list(WAN_LORA_TARGETS)),
                        "peak_bf16_tflops": self.peak, "variants": {}}
        import diffusers
        self.results["diffusers"] = diffusers.__version__
        self.results["measured_matmul_tflops"] = measured_matmul_tflops(self.device)
        self.model = self.build()
        self.scratch = tempfile.TemporaryDirectory(prefix="bench_wan_")  # the loop variants' base and run folders

    def build(self):
        from diffusers import WanTransformer3DModel

        torch.manual_seed(0)
        with torch.device(self.device):
            model = WanTransformer3DModel(**self.cfg)
        model = model.to(self.dtype).eval()
        model.rope = ContextRoPE.from_rope(model.rope)  # V4SModel's RoPE: same tables, explicit positions
        model.requires_grad_(False)
        return model

    def save_base(self, folder) -> str:
        """The benchmark's random transformer as a Wan folder (transformer/ in diffusers' layout), for the loop_*
        variants to load as `wan.source` when no --wan-source is given; before any variant adds an adapter."""
        self.model.save_pretrained(str(Path(folder) / "transformer"), safe_serialization=True)
        return str(folder)

    # ------------------------------------------------------------------------------------------ inputs
    def inputs(self, batch: int, frames: int, clean_frames: int, seed: int = 0):
        g = torch.Generator(self.device).manual_seed(seed)
        tpf = self.tokens // (self.fc + self.ft)
        x = torch.randn(batch, self.cfg["in_channels"], frames, self.h, self.w, device=self.device, generator=g,
                        dtype=self.dtype)
        t = torch.full((batch, frames * tpf), 700.0, device=self.device)
        t[:, :clean_frames * tpf] = 0  # clean context (and first target latent): t = 0, Wan2.2's per-token path
        text = torch.randn(batch, 512, self.cfg["text_dim"], device=self.device, generator=g, dtype=self.dtype)
        return x, t, text

    def forward(self, x, t, text, positions):
        self.model.rope.set_positions(positions)
        return self.model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]

    # ------------------------------------------------------------------------------------------ record
    def record(self, name, kind, times, flops, note="", **extra):
        a = self.args
        med = statistics.median(times)
        row = {"kind": kind, "seconds": med, "seconds_all": times, "tokens_per_s": self.tokens / med,
               "tflops_per_s": flops / med / 1e12, "mfu": (flops / med / 1e12 / self.peak) if self.peak else None,
               "mfu_vs_measured_matmul": (flops / med / 1e12 / self.results["measured_matmul_tflops"])
               if self.results["measured_matmul_tflops"] else None,
               "peak_gb": peak_gb(self.device), "note": note, **extra}
        self.results["variants"][name] = row
        print(f"{name:34s} {med:8.4f} s  mfu {row['mfu'] if row['mfu'] is None else round(row['mfu'], 3)}  "
              f"peak {row['peak_gb'] if row['peak_gb'] is None else round(row['peak_gb'], 1)} GB  {note}", flush=True)
        self.save()

    def fail(self, name, err):
        self.results["variants"][name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        print(f"{name:34s} FAILED {type(err).__name__}: {str(err)[:300]}", flush=True)
        traceback.print_exc()
        self.save()

    def save(self):
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summarise(self.results)
        out.with_suffix(".json").write_text(json.dumps(self.results, indent=1))
        out.with_suffix(".md").write_text(markdown(self.results))

    # ----------------------------------------------------------------------------------------- denoise
    def denoise(self, name, backend="native", compile=False, reuse=False, fp8=False, note=""):
        """One joint-guided denoising step: the conditional and unconditional passes as one batch of 2."""
        a, dev = self.args, self.device
        fp8_layers = contextlib.ExitStack()
        try:
            # fp8: every block projection in FP8, as `v4s sample --fp8` (the model is frozen: __init__)
            fp8_layers.enter_context(fp8_swapped(self.model, dev, on=fp8))
            configure_speed(self.model, checkpointing="none", attention_backend=backend, compile=compile)
            reset_memory(dev)
            frames = self.fc + self.ft
            positions = list(range(frames))
            x, t, text = self.inputs(2, frames, self.fc + 1)
            flops_full = transformer_flops(self.cfg, self.tokens, batch=2)
            with torch.inference_mode():
                if not reuse:
                    times = timed(lambda: self.forward(x, t, text, positions), dev, a.warmup, a.iters)
                    self.record(name, "denoise", times, flops_full, note)
                    return
                with ContextCache(self.model) as cache:
                    cache.mode = "fill"
                    fill = lambda: self.forward(x[:, :, :self.fc], t[:, :self.ctx_tokens], text, positions[:self.fc])
                    fill_times = timed(fill, dev, 1, 2)
                    cache.mode = "reuse"
                    xt, tt = x[:, :, self.fc:], t[:, self.ctx_tokens:]
                    step = lambda: self.forward(xt, tt, text, positions[self.fc:])
                    times = timed(step, dev, a.warmup, a.iters)
                    # correctness: reuse == the masked full sequence (the model this sampler belongs to)
                    got = step().float()
                    cache.mode, cache.n_context_tokens = "masked", self.ctx_tokens
                    want = self.forward(x, t, text, positions)[:, :, self.fc:].float()
                    rel = ((got - want).norm() / want.norm()).item()
                q = self.tokens - self.ctx_tokens
                flops = transformer_flops(self.cfg, self.tokens, batch=2, query_tokens=q)
                fill_s = statistics.median(fill_times)
                amortised = [s + fill_s / a.sampling_steps for s in times]
                self.record(name, "denoise", amortised, flops, note + f" (context fill {fill_s:.3f} s once per sample, "
                            f"amortised over {a.sampling_steps} steps)", step_only_seconds=statistics.median(times),
                            fill_seconds=fill_s, rel_error_vs_masked=rel)
        except Exception as e:  # noqa: BLE001 - a failed lever is a result too
            self.fail(name, e)
        finally:
            configure_speed(self.model, checkpointing="none", attention_backend="native")
            fp8_layers.close()

    # ------------------------------------------------------------------------------------------- train
    def train(self, name, checkpointing="full", backend="native", compile=False, fused=False, lora_dtype=None,
              fp8=False, keep_attention=False, note=""):
        """One LoRA training step: forward over [context | first | noisy], MSE on the noisy latents, backward,
        AdamW on the adapter."""
        from peft import LoraConfig

        a, dev = self.args, self.device
        model = self.model
        fp8_layers = contextlib.ExitStack()
        try:
            if "default" not in (getattr(model, "peft_config", None) or {}):
                model.add_adapter(LoraConfig(r=a.lora_rank, lora_alpha=a.lora_rank, target_modules=list(WAN_LORA_TARGETS)))
            lora_dtype = lora_dtype or self.dtype  # bf16 everything, as diffusers' scripts at bf16
            params = [p for n, p in model.named_parameters() if "lora_" in n]
            for p in params:
                p.data = p.data.to(lora_dtype)
                p.requires_grad_(True)
            fp8_layers.enter_context(fp8_swapped(model, dev, on=fp8))  # fp8: the frozen base in FP8 (wan.fp8_base)
            configure_speed(model, checkpointing=checkpointing, attention_backend=backend, compile=compile,
                            keep_attention=keep_attention)
            model.train()
            kw = {"fused": True} if fused else {}
            opt = torch.optim.AdamW(params, lr=1e-5, **kw)
            frames = self.fc + self.ft
            positions = list(range(frames))
            x, t, text = self.inputs(1, frames, self.fc + 1)
            target = torch.randn_like(x[:, :, self.fc + 1:], dtype=torch.float32)
            reset_memory(dev)

            def step():
                out = self.forward(x, t, text, positions)
                loss = F.mse_loss(out[:, :, self.fc + 1:].float(), target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            times = timed(step, dev, a.warmup, a.iters)
            self.profile(name, step)
            est = estimate_memory(self.cfg, self.tokens, lora_rank=a.lora_rank, checkpointing=checkpointing,
                                  compiled=compile, fp8_base=fp8, keep_attention=keep_attention)
            self.record(name, "train", times, 3 * transformer_flops(self.cfg, self.tokens), note,
                        estimate_gib=est.total_gib, checkpointing=str(checkpointing))
            del opt
        except Exception as e:  # noqa: BLE001
            self.fail(name, e)
        finally:
            for p in model.parameters():
                p.grad = None
            model.eval()
            configure_speed(model, checkpointing="none", attention_backend="native")
            fp8_layers.close()

    def profile(self, name, step):
        """--profile: 2 more steps of this variant under torch.profiler (after a traced warm-up step), summarised as
        `wan-train --set profile_steps=N` summarises the loop's (profiling.py): set beside each other, the two say
        what the loop adds to the bare step. Written to <out>_profile/<name>/ (trace.json, summary.txt)."""
        if name not in [s for s in self.args.profile.split(",") if s]:
            return
        out = Path(self.args.out).parent / f"{Path(self.args.out).name}_profile" / name
        with StepProfiler(out, first=2, n=2, start=0, device=self.device, announce=lambda _: None) as prof:
            for done in (1, 2, 3):
                step()
                prof.step(done)
        self.results.setdefault("profiles", {})[name] = str(out / "summary.txt")
        print(format_summary(prof.summary), flush=True)

    # -------------------------------------------------------------------------------------------- loop
    def loop(self, name, sets: dict, note=""):
        """The *full* training step: `v4s wan-train`'s own loop (train.train: autocast, fp32 adapters, condition
        dropout, a batch built and copied from the host, clipping, AdamW, a log row every step as the Wan configs
        do), with the model built from --wan-source by the config's factory (build_model: bf16 base, LoRA, FP8,
        compiled blocks) and one synthetic clip at the benchmark's shape. Times are the gaps between consecutive
        log rows (each written after the loss is read, i.e. after the GPU finished the step); the first step
        (compilation) and --warmup more are not timed. Our bare-step model waits on the CPU meanwhile."""
        from v4s_lite.train import read_log, train

        a, dev = self.args, self.device
        try:
            self.model.to("cpu")
            cfg = self.loop_config(name, sets)
            item = self.loop_item(cfg)
            null = torch.zeros(512, self.cfg["text_dim"])
            reset_memory(dev)
            run = train(cfg, items=[item], null_text=null)
            rows = read_log(run)
            first = a.warmup + 1  # rows[k] ends step k + 1
            seconds = [r["seconds"] for r in rows]
            times = [seconds[k] - seconds[k - 1] for k in range(first, first + a.iters)]
            if name in [s for s in a.profile.split(",") if s]:
                out = Path(a.out).parent / f"{Path(a.out).name}_profile" / name
                out.mkdir(parents=True, exist_ok=True)
                (out / "summary.txt").write_text((Path(run) / "profile" / "summary.txt").read_text())
                self.results.setdefault("profiles", {})[name] = str(out / "summary.txt")
            wan = cfg.wan
            est = estimate_memory(self.cfg, self.tokens, lora_rank=a.lora_rank, checkpointing=wan.checkpointing,
                                  compiled=bool(wan.compile), fp8_base=bool(wan.fp8_base),
                                  keep_attention=wan.checkpoint_keeps_attention)
            if cfg.clip_name == "custom":  # the config's clip shape differs from the benchmark's
                note += f" (clip: the benchmark's shape, not {Path(a.loop_config).name}'s)"
            self.record(name, "loop", times, 3 * transformer_flops(self.cfg, self.tokens), note,
                        estimate_gib=est.total_gib, checkpointing=str(wan.checkpointing), config=a.loop_config,
                        sets=dict(sets), losses=[r["loss"] for r in rows])
            logs = Path(a.out).parent / f"{Path(a.out).name}_loop"
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(run) / "loss.jsonl", logs / f"{name}.jsonl")  # the loop's own log rows
            shutil.rmtree(run)  # the checkpoint (adapter, optimizer state) and the full trace: not results
        except Exception as e:  # noqa: BLE001
            self.fail(name, e)
        finally:
            torch._dynamo.reset()  # the loop's compiled blocks hold its model
            reset_memory(dev)
            self.model.to(dev)

    def loop_config(self, name, sets: dict):
        """--loop-config with the benchmark's settings: its own base (--wan-source), the benchmark's shape
        (a custom clip when the config's differs: said in the row's note), warm-up + timed steps + 1, a log
        row every step, no validation, and only the final checkpoint."""
        a = self.args
        cfg = load_config(a.loop_config)
        clip = cfg.clip_config
        if (clip.width, clip.height, clip.context_latents, clip.target_latents) != \
                (a.width, a.height, self.fc, self.ft):
            clip = clip.with_(width=a.width, height=a.height, context_chunks=self.fc - 1, target_chunks=self.ft - 1,
                              box_frames=4, scan_frames=max(clip.scan_frames, 1 + 4 * (self.fc - 1)))
        profile = name in [s for s in a.profile.split(",") if s]
        steps = a.warmup + a.iters + 1
        over = {"wan.source": a.wan_source, "device": str(self.device), "clip": clip, "progress": False,
                "out_dir": str(Path(self.scratch.name) / name), "log_every": 1,
                "validate_every": 0, "checkpoint_every": 10**9,
                # profiled: 2 steps after the timed ones, then one more, whose checkpoint (the run's last step
                # saves one) falls outside the profile: a save in it read as 70 ms of isfinite and 220 ms of copies
                "steps": steps + (3 if profile else 0),
                "lora_rank": a.lora_rank, "lora_alpha": a.lora_rank, "log_with": "",
                **({"profile_steps": 2, "profile_after": steps} if profile else {}), **sets}
        extra = dict(parse_override(o) for o in a.loop_set)
        clash = sorted(set(extra) & (set(over) - {"wan.source", "device"}))
        if clash:
            raise ValueError(f"--loop-set {clash}: the benchmark sets these itself (the variant's name says the "
                             f"checkpointing: --selective N; the shape: --width/--height/--*-latents; steps: --warmup/"
                             f"--iters); drop them from --loop-set")
        over.update(extra)
        return load_config(a.loop_config, **over)

    def loop_item(self, cfg):
        """One encoded clip at the benchmark's shape, as a latent cache holds it: context latents, target latents
        (the clean first one included), a 512-token instruction, the context's RoPE positions (42 chunks spread
        over the scan, as the non-contiguous sampler draws them)."""
        from v4s_lite.sampling import context_positions

        g = torch.Generator().manual_seed(0)
        c = self.cfg["in_channels"]
        clip = cfg.clip_config
        step = max(1, (clip.scan_frames - 5) // 4 // max(1, self.fc - 1))  # chunks apart; chunk k: frames 4k+1..4k+4
        frames = [0] + [1 + 4 * (step * j + 1) + i for j in range(self.fc - 1) for i in range(4)]
        return {"context_latents": torch.randn(c, self.fc, self.h, self.w, generator=g),
                "target_latents": torch.randn(c, self.ft, self.h, self.w, generator=g),
                "prompt_embeds": torch.randn(512, self.cfg["text_dim"], generator=g),
                "context_positions": torch.as_tensor(context_positions(frames), dtype=torch.long)}

    # ------------------------------------------------------------------------------------------- peer
    def peer(self, name, kind, note=""):
        """DiffSynth-Studio's own DiT (peer_diffsynth.py) at the same shape: a LoRA step with every block
        checkpointed (its trainer's setting), or joint-guided denoising as its CFG runs it, two passes in sequence.
        Our model waits on the CPU meanwhile, so the peak memory is the peer's own."""
        import peer_diffsynth as P

        a, dev = self.args, self.device
        dit = None
        try:
            self.model.to("cpu")
            reset_memory(dev)
            dit = P.build(self.cfg, dev, self.dtype, lora_rank=a.lora_rank if kind == "train" else 0)
            x, _, text = self.inputs(2, self.fc + self.ft, self.fc + 1)  # the latents and prompts ours gets
            x = x[:1]  # DiffSynth's timesteps are its own (model_fn), its CFG runs the two prompts one by one
            t = torch.tensor(700.0, device=dev)
            reset_memory(dev)
            if kind == "train":
                dit.train()
                opt = torch.optim.AdamW([p for p in dit.parameters() if p.requires_grad], lr=1e-5)
                target = torch.randn_like(x, dtype=torch.float32)

                def step():
                    out = P.model_fn(dit, x, t, text[:1], use_gradient_checkpointing=True)
                    F.mse_loss(out.float(), target).backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)

                times = timed(step, dev, a.warmup, a.iters)
                self.record(name, "peer_train", times, 3 * transformer_flops(self.cfg, self.tokens), note)
            else:
                with torch.inference_mode():
                    times = timed(lambda: (P.model_fn(dit, x, t, text[:1]), P.model_fn(dit, x, t, text[1:])), dev,
                                  a.warmup, a.iters)
                self.record(name, "peer_denoise", times, transformer_flops(self.cfg, self.tokens, batch=2), note)
        except Exception as e:  # noqa: BLE001 - a peer that does not run is a result too
            self.fail(name, e)
        finally:
            del dit
            reset_memory(dev)
            self.model.to(dev)


def summarise(r):
    v = r["variants"]
    s = {}

    def sec(name):
        return v.get(name, {}).get("seconds")

    base_t, base_d = sec("train_stock_ckpt"), sec("denoise_stock")
    for name, row in v.items():
        if "seconds" in row:
            base = base_t if row["kind"] in ("train", "peer_train", "loop") else base_d
            row["ratio_vs_stock"] = row["seconds"] / base if base else None
    trains = [(n, row) for n, row in v.items() if row.get("kind") == "train" and row.get("peak_gb") is not None]
    fits = [(row["seconds"], n, row) for n, row in trains if row["peak_gb"] <= TRAIN_TARGET_GB]
    if fits and base_t:
        t, n, row = min(fits)
        s["train"] = {"best": n, "ratio": t / base_t, "target_ratio": TRAIN_TARGET_RATIO, "peak_gb": row["peak_gb"],
                      "met": t / base_t <= TRAIN_TARGET_RATIO}
    small = [(row["seconds"], n, row) for n, row in trains if row["peak_gb"] <= SMALL_GPU_GB * 0.93]
    if small:
        t, n, row = min(small)
        s["fits_24gb"] = {"best": n, "seconds": t, "peak_gb": row["peak_gb"]}
    peer_t = v.get("peer_diffsynth_train", {}).get("seconds")
    peer_d = v.get("peer_diffsynth_denoise", {}).get("seconds")
    fits_peer = [(row["seconds"], n, row) for n, row in trains if row["peak_gb"] <= PEER_TRAIN_GB]
    if peer_t and fits_peer:
        t, n, row = min(fits_peer)
        s["train_vs_diffsynth"] = {"best": n, "ratio": t / peer_t, "target_ratio": PEER_TRAIN_RATIO,
                                   "peak_gb": row["peak_gb"], "met": t / peer_t <= PEER_TRAIN_RATIO}
    # the goal proper: the full wan-train step (the loop), not the bare step above
    loops = [(row["seconds"], n, row) for n, row in v.items() if row.get("kind") == "loop"
             and (row["peak_gb"] is None or row["peak_gb"] <= PEER_TRAIN_GB)]
    if peer_t and loops:
        t, n, row = min(loops)
        s["loop_vs_diffsynth"] = {"best": n, "ratio": t / peer_t, "target_ratio": PEER_TRAIN_RATIO,
                                  "peak_gb": row["peak_gb"], "met": t / peer_t <= PEER_TRAIN_RATIO}
    full_attn = [(row["seconds"], n) for n, row in v.items() if row.get("kind") == "denoise" and "reuse" not in n]
    if peer_d and full_attn:
        t, n = min(full_attn)
        s["denoise_vs_diffsynth"] = {"best": n, "ratio": t / peer_d, "target_ratio": PEER_DENOISE_RATIO,
                                     "met": t / peer_d <= PEER_DENOISE_RATIO}
    dens = [(row["seconds"], n) for n, row in v.items() if row.get("kind") == "denoise" and n != "denoise_stock"]
    if dens and base_d:
        t, n = min(dens)
        s["denoise"] = {"best": n, "ratio": t / base_d, "target_ratio": DENOISE_TARGET_RATIO,
                        "met": t / base_d <= DENOISE_TARGET_RATIO}
    r["summary"] = s


def markdown(r) -> str:
    sh = r["shape"]
    lines = [f"# Wan2.2-TI2V-5B benchmark: {r['gpu']}", "",
             f"Command: `{r['command']}`  ", f"torch {r['torch']}, diffusers {r['diffusers']}; {r['weights']}.  ",
             f"Shape: {sh['width']}x{sh['height']}, {sh['context_latents']} context + {sh['target_latents']} target "
             f"latents = {sh['tokens']} tokens, batch 1 (denoising: the two guidance passes as a batch of 2), LoRA "
             f"rank {sh['lora_rank']} on {', '.join(sh['lora_targets'])}.  ",
             f"MFU = model FLOPs / time / {r['peak_bf16_tflops']} TFLOP/s (dense bf16 peak); model FLOPs from "
             f"`v4s_lite.budget.transformer_flops` (training = 3x forward; recomputation not counted). Measured "
             f"8192^3 bf16 matmul: {r['measured_matmul_tflops'] and round(r['measured_matmul_tflops'])} TFLOP/s.", "",
             "| variant | seconds | x stock | tokens/s | TFLOP/s | MFU | peak GB | note |", "|---|---|---|---|---|---|---|---|"]
    for name, row in r["variants"].items():
        if "error" in row:
            lines.append(f"| {name} | failed | | | | | | {row['error'][:150]} |")
            continue
        f = lambda x, p: "" if x is None else f"{x:.{p}f}"
        lines.append(f"| {name} | {f(row['seconds'], 3)} | {f(row.get('ratio_vs_stock'), 2)} | "
                     f"{row['tokens_per_s']:.0f} | {row['tflops_per_s']:.0f} | {f(row['mfu'], 2)} | "
                     f"{f(row['peak_gb'], 1)} | {row['note']} |")
    s = r.get("summary", {})
    lines += ["", "## Targets", ""]
    if "train" in s:
        t = s["train"]
        lines.append(f"- Training step <= {t['target_ratio']}x stock-with-checkpointing at <= {TRAIN_TARGET_GB:.0f} GB: "
                     f"best `{t['best']}` {t['ratio']:.2f}x at {t['peak_gb']:.1f} GB -> "
                     f"{'met' if t['met'] else 'MISSED by ' + format(t['ratio'] / t['target_ratio'] - 1, '.0%')}")
    if "fits_24gb" in s:
        t = s["fits_24gb"]
        lines.append(f"- Fits a 24 GB GPU (peak <= {SMALL_GPU_GB * 0.93:.1f} GB usable): `{t['best']}`, "
                     f"{t['seconds']:.3f} s at {t['peak_gb']:.1f} GB")
    if "denoise" in s:
        t = s["denoise"]
        lines.append(f"- Joint-guided denoising step <= {t['target_ratio']}x stock: best `{t['best']}` "
                     f"{t['ratio']:.2f}x -> {'met' if t['met'] else 'MISSED by ' + format(t['ratio'] / t['target_ratio'] - 1, '.0%')}")
    for key, what, gb in (("train_vs_diffsynth", "Bare training step", f" at <= {PEER_TRAIN_GB:.0f} GB"),
                          ("loop_vs_diffsynth", "Full wan-train step (the loop: autocast, clipping, logging)",
                           f" at <= {PEER_TRAIN_GB:.0f} GB"),
                          ("denoise_vs_diffsynth", "Joint-guided denoising step, full attention", "")):
        if key in s:
            t = s[key]
            lines.append(f"- {what} <= {t['target_ratio']}x DiffSynth-Studio's (same run){gb}: best `{t['best']}` "
                         f"{t['ratio']:.2f}x -> "
                         f"{'met' if t['met'] else 'MISSED by ' + format(t['ratio'] / t['target_ratio'] - 1, '.0%')}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wan2.2-ti2v-5b", help="a v4s_lite.model.transformer_config name")
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--context-latents", type=int, default=43)
    p.add_argument("--target-latents", type=int, default=46)
    p.add_argument("--lora-rank", type=int, default=32)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--sampling-steps", type=int, default=50, help="steps the context fill is amortised over")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", default="", help="comma-separated variant name prefixes to run, in this order (default: all)")
    p.add_argument("--selective", default="10,6", help="numbers of checkpointed blocks to try with compile")
    p.add_argument("--profile", default="", help="comma-separated training variants to also profile (2 steps, "
                   "torch.profiler; summaries in <out>_profile/NAME/summary.txt)")
    p.add_argument("--wan-source", default="", help="a Wan2.2 folder in diffusers' layout whose transformer the loop_* "
                   "variants train (default: the benchmark's own random one, saved to a scratch folder and removed "
                   "at the end); every variant then uses its architecture")
    p.add_argument("--loop-config", default="configs/wan22_ti2v_5b_24gb.yaml", help="the config loop_* variants train")
    p.add_argument("--loop-set", action="append", default=[], metavar="KEY=VALUE",
                   help="more overrides of --loop-config for every loop_* variant (as wan-train's --set)")
    p.add_argument("--out", default="results/bench_wan")
    args = p.parse_args(argv)

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    from diffusers.utils import logging as dlogging
    dlogging.set_verbosity_error()  # set_attention_backend warns on every call
    import torch._dynamo as dynamo
    dynamo.config.cache_size_limit = 64  # 30 blocks x (train, eval) x backends: stay compiled
    dynamo.config.accumulated_cache_size_limit = 512
    b = Bench(args)
    cuda = b.device.type == "cuda"
    best = "native"

    plan = [("denoise_stock", lambda: b.denoise("denoise_stock", note="stock: eager, SDPA default"))]
    if cuda:
        for be in ("_native_cudnn", "_native_flash"):
            plan.append((f"denoise_{be.strip('_')}", lambda be=be: b.denoise(f"denoise_{be.strip('_')}", backend=be,
                                                                             note=f"attention backend {be}")))
    plan.append(("denoise_reuse", lambda: b.denoise("denoise_reuse", backend=pick(b, "native"), reuse=True,
                                                     note="context reuse (eager)")))
    c = b.cfg
    fp8_shapes = fits_fp8(c["num_attention_heads"] * c["attention_head_dim"], c["ffn_dim"])
    if fp8_shapes:
        plan.append(("denoise_fp8", lambda: b.denoise("denoise_fp8", backend=pick(b, "native"), fp8=True,
                                                      note="FP8 block projections (eager), full attention")))
    if cuda:
        plan += [("denoise_compile", lambda: b.denoise("denoise_compile", backend=pick(b, "native"), compile=True,
                                                       note="+ torch.compile (regional)")),
                 ("denoise_compile_reuse", lambda: b.denoise("denoise_compile_reuse", backend=pick(b, "native"),
                                                             compile=True, reuse=True, note="+ compile + context reuse")),
                 ("denoise_fp8_compile", lambda: b.denoise("denoise_fp8_compile", backend=pick(b, "native"),
                                                           compile=True, fp8=True,
                                                           note="+ compile + FP8 block projections, full attention"))]
    # Training. Stock = what diffusers' LoRA scripts do at bf16: bf16 weights and adapter, eager, default AdamW.
    plan += [("train_stock_ckpt", lambda: b.train("train_stock_ckpt", note="stock: eager, full checkpointing")),
             ("train_stock_nockpt", lambda: b.train("train_stock_nockpt", checkpointing="none",
                                                     note="stock, no checkpointing")),
             ("train_fp32_lora", lambda: b.train("train_fp32_lora", lora_dtype=torch.float32,
                                                 note="stock with fp32 adapter weights (fp16-style upcast)")),
             ("train_fused_adamw", lambda: b.train("train_fused_adamw", fused=True, note="+ fused AdamW"))]
    if fp8_shapes:
        plan.append(("train_fp8", lambda: b.train("train_fp8", fused=True, fp8=True,
                                                  note="+ fused AdamW + FP8 base matmuls (eager, full checkpointing)")))
    if cuda:
        plan.append(("train_compile_ckpt", lambda: b.train("train_compile_ckpt", fused=True, compile=True,
                                                           note="+ compile, full checkpointing")))
        for n in [int(s) for s in args.selective.split(",") if s]:
            plan.append((f"train_compile_sel{n}", lambda n=n: b.train(
                f"train_compile_sel{n}", checkpointing=n, fused=True, compile=True,
                note=f"+ compile, checkpoint {n} of 30 blocks")))
        plan.append(("train_compile_nockpt", lambda: b.train("train_compile_nockpt", checkpointing="none", fused=True,
                                                             compile=True, note="+ compile, no checkpointing")))
        for n in [int(s) for s in args.selective.split(",") if s]:  # FP8 on the frozen base (v4s_lite.fp8)
            plan.append((f"train_fp8_sel{n}", lambda n=n: b.train(
                f"train_fp8_sel{n}", checkpointing=n, fused=True, compile=True, fp8=True,
                note=f"+ compile + FP8 base matmuls, checkpoint {n} of 30 blocks")))
            plan.append((f"train_fp8_keep{n}", lambda n=n: b.train(  # selective activation checkpointing
                f"train_fp8_keep{n}", checkpointing=n, fused=True, compile=True, fp8=True, keep_attention=True,
                note=f"+ compile + FP8 base matmuls, checkpoint {n} of 30 blocks keeping self-attention")))
    # the full wan-train step (train.train on the config's factory model) at the FP8 settings above; it loads its
    # base from a Wan folder: --wan-source, or the benchmark's own random one (saved below when a loop_* row runs)
    for n in [int(s) for s in args.selective.split(",") if s]:
        for keep in (True, False):
            v = f"loop_fp8_{'keep' if keep else 'sel'}{n}"
            sets = {"wan.fp8_base": fp8_shapes, "wan.checkpointing": n, "wan.checkpoint_keeps_attention": keep}
            note = (f"the full wan-train step: {Path(args.loop_config).name}{', FP8 base' if fp8_shapes else ''}, "
                    f"checkpoint {n} of 30 blocks{' keeping self-attention' if keep else ''}")
            rows = [(v, sets, note)]
            if keep:  # the same step with each noised batch built ahead by 2 DataLoader workers (batch_workers)
                # instead of by the loop's own process between steps, when the host waits on the last step's loss
                rows.append((v + "_w2", {**sets, "batch_workers": 2}, note + ", batches built by 2 DataLoader workers"))
            for name, s, nt in rows:
                plan.append((name, lambda name=name, s=s, nt=nt: b.loop(name, s, note=nt)))
    # the peer: DiffSynth-Studio's own Wan DiT at the same shape (its trainer's full checkpointing; its CFG)
    plan += [("peer_diffsynth_denoise", lambda: b.peer("peer_diffsynth_denoise", "denoise",
                                                       note="DiffSynth-Studio's DiT, two passes in sequence")),
             ("peer_diffsynth_train", lambda: b.peer("peer_diffsynth_train", "train",
                                                     note="DiffSynth-Studio's DiT, LoRA, every block checkpointed"))]
    # --only also sets the order: a run cut short by a time limit keeps the rows named first
    only = [s for s in args.only.split(",") if s]
    order = [n for o in only for n, _ in plan if n.startswith(o)] if only else [n for n, _ in plan]
    runs = dict(plan)
    if any(n.startswith("loop_") for n in order) and not args.wan_source:
        args.wan_source = b.save_base(Path(b.scratch.name) / "base")  # ~10 GB at 5B: scratch, removed at the end
    for name in dict.fromkeys(order):  # each once, in the order asked
        runs[name]()
    b.save()
    b.scratch.cleanup()
    print(markdown(b.results))


def pick(b, default):
    """The fastest attention backend measured so far in this run (denoising variants)."""
    v = b.results["variants"]
    cands = [(v[n]["seconds"], be) for n, be in (("denoise_stock", "native"), ("denoise_native_cudnn", "_native_cudnn"),
                                                 ("denoise_native_flash", "_native_flash")) if "seconds" in v.get(n, {})]
    return min(cands)[1] if cands else default


if __name__ == "__main__":
    main()

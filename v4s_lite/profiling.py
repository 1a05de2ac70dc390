"""Where a training step's time goes: torch.profiler over a few steps of `v4s train` (TrainConfig.profile_steps),
read back as two questions. Is the GPU busy? And when it idles, what is the host doing?

A GPU trains fast only while the host queues work ahead of it. Whenever the host waits for the device (`.item()`,
a blocking `.to("cuda")` of pageable memory, a stream synchronize) the queue drains, and the GPU idles until the
host has caught up with Python, data loading and kernel launches. The summary measures this from the trace
itself: the union of the device's kernel and copy intervals over the recorded steps (the busy fraction), and the
longest idle gaps, each named by the host operation that spent the most time inside it.

Writes OUT/trace.json (open it in https://ui.perfetto.dev or chrome://tracing) and OUT/summary.txt.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")  # kineto's categories of work on the device
HOST_CATEGORIES = ("cpu_op", "user_annotation", "cuda_runtime", "python_function")


def busy_and_gaps(intervals, window, min_gap: float = 0.0):
    """(busy time, [(gap start, gap end), ...]) of `intervals` [(start, end), ...] within `window` (start, end):
    busy = the length of their union clipped to the window (overlapping kernels on several streams count once);
    gaps = the holes of at least `min_gap`, in time order."""
    lo, hi = window
    busy, gaps, cursor = 0.0, [], lo
    for s, e in sorted((max(s, lo), min(e, hi)) for s, e in intervals if e > lo and s < hi):
        if s > cursor:
            if s - cursor >= min_gap:
                gaps.append((cursor, s))
        busy += max(0.0, e - max(s, cursor))
        cursor = max(cursor, e)
    if hi - cursor >= min_gap and hi > cursor:
        gaps.append((cursor, hi))
    return busy, gaps


def _span(e) -> tuple[float, float]:
    return float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))


def _overlap(a, b) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def summarise_trace(trace: dict, top: int = 5, min_gap_us: float = 200.0) -> dict:
    """The numbers of a Chrome trace (torch.profiler's export) over its `ProfilerStep#N` steps: per-step wall time,
    the device's busy fraction, its longest idle gaps named by the host operation most inside each, and the
    kernels that take most device time. Times in the trace are microseconds."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and "ts" in e]
    # the host's step annotations (a GPU trace repeats each on the device timeline as "gpu_user_annotation")
    steps = sorted((e for e in events if e.get("name", "").startswith("ProfilerStep#")
                    and e.get("cat") != "gpu_user_annotation"), key=lambda e: e["ts"])
    if not steps:
        raise ValueError("the trace has no ProfilerStep#N events: record it with a torch.profiler schedule and "
                         "call prof.step() once per training step")
    window = (_span(steps[0])[0], _span(steps[-1])[1])
    wall = window[1] - window[0]
    device = [e for e in events if e.get("cat") in DEVICE_CATEGORIES]
    host = [e for e in events if e.get("cat") in HOST_CATEGORIES and not e["name"].startswith("ProfilerStep#")]
    out = {"steps": len(steps), "ms_per_step": wall / len(steps) / 1e3, "device_events": len(device),
           "top_host": _top_level(host, window, len(steps), top + 1)}
    if not device:
        return out
    busy, gaps = busy_and_gaps([_span(e) for e in device], window, min_gap_us)
    out["device_busy"] = busy / wall
    out["idle_ms_per_step"] = (wall - busy) / len(steps) / 1e3
    named = []
    for g in sorted(gaps, key=lambda g: g[0] - g[1])[:top]:  # the longest first
        inside = Counter()
        for e in host:
            inside[e["name"]] += _overlap(_span(e), g)
        most = inside.most_common(1)
        name = most[0][0] if most and most[0][1] > 0 else "(no host op)"
        named.append({"ms": (g[1] - g[0]) / 1e3, "at_ms": (g[0] - window[0]) / 1e3, "host": name})
    out["gaps"] = named
    by_kernel = Counter()
    for e in device:
        by_kernel[e["name"]] += float(e.get("dur", 0.0))
    out["top_kernels"] = [{"name": n[:90], "ms_per_step": t / len(steps) / 1e3}
                          for n, t in by_kernel.most_common(top)]
    return out


def _top_level(host, window, n_steps: int, top: int) -> list[dict]:
    """Host operations not nested in another on the same thread (forward, backward, the optimizer, the DataLoader's
    next batch...), by their time inside the window."""
    by_op, ends = Counter(), {}
    for e in sorted(host, key=lambda e: (e["ts"], -e.get("dur", 0.0))):
        s, t = _span(e)
        tid = (e.get("pid"), e.get("tid"))
        if s >= ends.get(tid, float("-inf")) and e.get("cat") != "cuda_runtime":
            ends[tid] = t
            by_op[e["name"]] += _overlap((s, t), window)
    return [{"name": n[:90], "ms_per_step": t / n_steps / 1e3} for n, t in by_op.most_common(top) if t > 0]


def format_summary(s: dict) -> str:
    lines = [f"{s['steps']} steps recorded: {s['ms_per_step']:.1f} ms per step (wall)"]
    host = ["host operations taking most time (outermost):"]
    host += [f"  {h['ms_per_step']:7.2f} ms/step  {h['name']}" for h in s["top_host"]]
    if "device_busy" not in s:
        lines.append("no device activity in the trace (a CPU run): the host's time is the step's time")
        return "\n".join(lines + host)
    lines.append(f"device busy {100 * s['device_busy']:.1f}% of it; idle {s['idle_ms_per_step']:.1f} ms per step")
    if s["gaps"]:
        lines.append("longest idle gaps (the host operation most inside each):")
        lines += [f"  {g['ms']:7.2f} ms at +{g['at_ms']:.1f} ms  {g['host']}" for g in s["gaps"]]
    lines.append("kernels taking most device time:")
    lines += [f"  {k['ms_per_step']:7.2f} ms/step  {k['name']}" for k in s["top_kernels"]]
    return "\n".join(lines + host)


class StepProfiler:
    """torch.profiler over training steps `first`..`first + n - 1` (counted like the loop's `done`: 1 = the
    first step), the step before them tracing as the profiler's warm-up. On a GPU the device is synchronized
    before the first recorded step and after the last, so the recorded window holds exactly those steps' work;
    between them the loop runs as it always does. Call step(done) after every optimizer step."""

    def __init__(self, out_dir, first: int, n: int, start: int, device: torch.device, announce=print):
        if first < start + 2:
            raise ValueError(f"the first recorded step ({first}) must leave a warm-up step after step {start}")
        self.out_dir, self.first, self.last, self.device, self.announce = Path(out_dir), first, first + n - 1, device, announce
        cuda = device.type == "cuda"
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
        # the profiler counts its own steps from 0 at the first step of this run (start + 1)
        sched = torch.profiler.schedule(skip_first=first - start - 2, wait=0, warmup=1, active=n, repeat=1)
        self.prof = torch.profiler.profile(activities=activities, schedule=sched, on_trace_ready=self._ready)
        self.summary = None

    def __enter__(self):
        self.prof.__enter__()
        return self

    def __exit__(self, *exc):
        return self.prof.__exit__(*exc)

    def step(self, done: int) -> None:
        if self.device.type == "cuda" and done in (self.first - 1, self.last):
            torch.cuda.synchronize(self.device)  # the window's edges only: see the class doc
        self.prof.step()

    def _ready(self, prof) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "trace.json"
        prof.export_chrome_trace(str(path))
        self.summary = summarise_trace(json.loads(path.read_text()))
        text = f"profile of steps {self.first}-{self.last} ({path})\n" + format_summary(self.summary)
        if self.device.type == "cuda" and not self.summary["device_events"]:
            text += ("\nthe GPU was profiled but the trace holds none of its work: the profiler could not read it "
                     "(CUPTI unavailable or not permitted on this machine; kineto says why on stderr)")
        (self.out_dir / "summary.txt").write_text(text + "\n")
        self.announce(text)

"""Measuring tools: step timers, FLOP counting, peak memory, the machine's matmul rate, and the
CPU share of other processes (so a disturbed measurement is visible)."""
from __future__ import annotations

import os
import platform
import time


def cuda_sync(device) -> None:
    import torch

    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def step_timer(device, profile_rows: int = 0):
    import lightning.pytorch as L
    import torch

    class StepTimer(L.Callback):
        """Wall time of a fit's steps: epoch start -> last step end; data wait = the gaps between a
        step's end and the next step's start (loader, host->device copy, batched augmentation)."""

        def __init__(self):
            self.t0 = self.last = 0.0
            self.data = 0.0
            self.images = self.steps = 0
            self.prof = None
            self.table = ""
            self.top: list = []

        def _now(self):
            cuda_sync(device)
            return time.perf_counter()

        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = self.last = self._now()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            now = self._now()
            self.data += now - self.last
            self.images += len(batch[0])
            if profile_rows and batch_idx == 0:
                acts = [torch.profiler.ProfilerActivity.CPU]
                if getattr(device, "type", device) == "cuda":
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                self.prof = torch.profiler.profile(activities=acts)
                self.prof.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.prof is not None:
                cuda_sync(device)
                self.prof.__exit__(None, None, None)
                self.table, self.top = _profile_summary(self.prof, profile_rows)
                self.prof = None
            self.last = self._now()
            self.steps += 1

        def result(self) -> dict:
            return {"images": self.images, "seconds": self.last - self.t0, "data_seconds": self.data,
                    "steps": self.steps}

    return StepTimer()


def _profile_summary(prof, rows: int) -> tuple[str, list]:
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    out = [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
            "share": round(e.self_cpu_time_total / total, 4)} for e in top]
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)
    return table, out


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_stats(device) -> dict:
    """Peak RSS of this (worker) process, and its peak GPU memory on CUDA."""
    import torch

    out = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if getattr(device, "type", device) == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def count_flops(build, forward, train: bool) -> float:
    """FLOPs (matmul/conv, as FlopCounterMode counts them) of forward (+ backward when `train`) of a
    model built on the meta device (nothing is computed; parameters a builder creates on the CPU
    anyway, e.g. through nn.utils.skip_init, are moved to meta before anything runs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build().to("meta")
        model.train(train)
        with FlopCounterMode(display=False) as counter:
            if train:
                loss = forward(model)
                loss.backward()
            else:
                with torch.no_grad():
                    forward(model)
    return float(counter.get_total_flops())


def matmul_gflops(seconds: float = 1.0, n: int = 2048) -> float:
    """fp32 rate of a loop of n x n matmuls on this process's threads (the machine's practical peak)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and reps >= 3:
            return 2 * n**3 * reps / elapsed / 1e9


def _cpu_busy_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        parts = [int(v) for v in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def _proc_jiffies(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class ForeignCpu:
    """Share of the machine's CPU time used by processes other than this bench between start/stop."""

    def __init__(self, pids):
        self.pids = [os.getpid(), *pids]

    def start(self):
        self.busy0, self.total0 = _cpu_busy_jiffies()
        self.ours0 = _proc_jiffies(self.pids)
        return self

    def stop(self) -> float:
        busy, total = _cpu_busy_jiffies()
        ours = _proc_jiffies(self.pids)
        d_total = max(1, total - self.total0)
        return max(0.0, ((busy - self.busy0) - (ours - self.ours0)) / d_total)


WAITED = [0.0]  # seconds spent waiting for other processes, this run


def wait_for_quiet(max_share: float, max_wait: float, log, pids=()) -> float:
    """Wait (up to max_wait s) until other processes use less than max_share of the CPUs over a
    2 s window; returns the last measured share. Time beyond the first window counts as waiting."""
    deadline = time.time() + max_wait
    t0 = time.perf_counter()
    try:
        while True:
            probe = ForeignCpu(pids).start()
            time.sleep(2.0)
            share = probe.stop()
            if share < max_share or time.time() >= deadline:
                if share >= max_share:
                    log(f"  warning: other processes still use {share:.0%} of the CPUs; measuring anyway")
                return share
            log(f"  other processes use {share:.0%} of the CPUs; waiting for a quiet machine ...")
            time.sleep(8.0)
    finally:
        WAITED[0] += max(0.0, time.perf_counter() - t0 - 2.0)


def machine_info() -> dict:
    import lightning
    import torch
    import torchvision

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2") + \
        (", AMX" if "amx_tile" in flags else ", no AMX")
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = int(fh.readline().split()[1]) / 2**20
    except OSError:
        mem_gb = 0.0
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    info = {"cpu": cpu, "vector": vector, "logical_cpus": logical, "usable_cpus": usable,
            "torch_threads": torch.get_num_threads(), "ram_gb": round(mem_gb, 1),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "lightning": lightning.__version__,
            "python": platform.python_version(), "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def median(values):
    v = sorted(values)
    n = len(v)
    if not n:
        return None
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def summary(values) -> dict:
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def rate(r: dict) -> float:
    return r["images"] / max(r["seconds"], 1e-12)

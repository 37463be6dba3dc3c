"""How long each graded script would take on the hidden test set, on the device it runs on here.

The figure is measured, not modelled: the run's wall time per image times the hidden test size.
That share includes the start-up (interpreter, imports, model loading) once per image, so on a
small set it is an upper bound; when that bound misses the limit, the script is timed once more on
one image and the estimate becomes start-up + per-image time x (test size - 1).
The 10-minute limit is the graders' (one 11 GB GPU): on a CPU, missing it is a warning for this CPU.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from dlcv.check.rows import FAIL, PASS, WARN, Row

LIMIT_S = 600.0  # 10 minutes per script (the course's rule)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_label() -> str:
    """`cuda:<name>` where the graded scripts will use a GPU, else `cpu (<model>, <n> cores)`."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu ({cpu_model()}, {cores} cores)"


def extrapolate(seconds: float, n: int, hidden_n: int, startup_s: float | None = None) -> float:
    """Seconds for `hidden_n` images from a run of `n` images (and a one-image run, if any)."""
    if startup_s is None or n < 2:
        return seconds / n * hidden_n
    per_image = max(seconds - startup_s, 0.0) / (n - 1)
    return startup_s + per_image * (hidden_n - 1)


def size_note(size: tuple[int, int] | None, real: tuple[int, int] | None) -> str:
    """A warning when the images timed are not the real test images' size (P3 demo data)."""
    if not size or not real or size == real:
        return ""
    ratio = real[0] * real[1] / (size[0] * size[1])
    return (f"measured on {size[0]}x{size[1]} images; the real ones are {real[0]}x{real[1]} ({ratio:.3g}x the "
            f"pixels): the real test will take longer")


def time_row(script: str, estimate_s: float, hidden_n: int, how: str, device: str, extra_note: str = "") -> Row:
    """PASS within the limit; over it, FAIL on a GPU and WARN on a CPU (the graders use a GPU)."""
    on_cpu = device.startswith("cpu")
    figure = f"~{estimate_s:,.0f} s for {hidden_n:,}" + (" (this CPU)" if on_cpu else "")
    limit = f"{LIMIT_S:.0f} s (GPU)"
    notes = [how, extra_note]
    if estimate_s <= LIMIT_S:
        result = WARN if extra_note else PASS
    elif on_cpu:
        result = WARN
        notes.append(f"over the limit on this CPU ({device}); the graders run on one 11 GB GPU, re-check there")
    else:
        result = FAIL
        notes.append(f"over the 10-minute limit on {device}")
    return Row(f"{script} time", result, figure, limit, "; ".join(filter(None, notes)))

"""Where a number came from: run name, config file, command, hardware, date, demo or real data."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from dlcv.report.runs import Run

DEMO_TAG = "demo data"
REAL_TAG = "real data"
UNKNOWN_TAG = "data kind unknown"


def data_tags(runs: Iterable[Run]) -> list[str]:
    """One tag for a table/figure built from these runs: demo wins (a single demo number makes the
    whole table a demo table), then unknown, and "real data" only when every run says so."""
    kinds = {r.data_kind for r in runs}
    if not kinds:
        return []
    if "demo" in kinds:
        return [DEMO_TAG]
    if "unknown" in kinds:
        return [UNKNOWN_TAG]
    return [REAL_TAG]


def display_path(path: Path) -> str:
    """Relative to the working directory when below it (shorter, portable), else absolute."""
    path = Path(path)
    try:
        return os.path.relpath(path.resolve(), Path.cwd()) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def hardware(run: Run) -> str:
    meta = run.meta
    if not meta:
        return "hardware unknown (no meta.json)"
    devices = run.cfg("trainer.devices", "auto")
    nodes = run.cfg("trainer.num_nodes", 1) or 1
    if meta.get("gpu"):
        count = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, list) else None)
        many = f"{count * nodes} x " if count and count * nodes > 1 else ""
        return f"{many}{meta['gpu']}"
    threads = meta.get("cpu_threads")
    return f"CPU {meta.get('host_cpu') or ''}".strip() + (f", {threads} threads" if threads else "")


def date(run: Run) -> str:
    d = str(run.meta.get("date", "") or "")
    return d.replace("T", " ")[:16] if d else "date unknown"


def command(run: Run) -> str:
    """meta.json's command, its program shown as `dlcv` (`python -m dlcv` records .../dlcv/__main__.py)."""
    text = str(run.meta.get("command") or "")
    if not text:
        return "command unknown (no meta.json)"
    program, _, rest = text.partition(" ")
    p = Path(program)
    if p.name == "dlcv" or (p.name == "__main__.py" and p.parent.name == "dlcv"):
        program = "dlcv"
    return f"{program} {rest}".strip()


def config_file(run: Run) -> str:
    return display_path(run.path / "config.yaml")


def source_lines(runs: Sequence[Run], files: Sequence[str] = ()) -> list[dict]:
    """One dict per run for a table's/figure's source note."""
    out = []
    for r in runs:
        out.append({
            "run": r.name, "path": display_path(r.path), "files": list(files),
            "config": config_file(r), "command": command(r), "hardware": hardware(r), "date": date(r),
            "data": {"demo": "demo data", "real": "real data"}.get(r.data_kind, "data kind unknown"),
        })
    return out


def versions(run: Run) -> str:
    m = run.meta
    parts = [f"{k} {m[k]}" for k in ("python", "torch", "torchvision", "lightning") if m.get(k)]
    return ", ".join(parts) or "unknown"

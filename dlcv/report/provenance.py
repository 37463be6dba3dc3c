"""Where a number came from: data kind, hardware, date, software and the command of each run, shown
per run in the appendix (tables and figures name their runs and files and point there)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from dlcv.report.doc import Bullets, Code, Para, Section, Table, not_available
from dlcv.report.runs import Collection, Run
from dlcv.runfolder import CONFIG

DEMO_TAG = "demo data"
REAL_TAG = "real data"
UNKNOWN_TAG = "data kind unknown"


def data_tags(runs: Iterable[Run]) -> list[str]:
    """One tag for a table/figure built from these runs: demo wins (a single demo number makes the
    whole table a demo table), then unknown, and "real data" only when every run says so."""
    kinds = {r.data_kind for r in runs}
    if not kinds:
        return []
    return [DEMO_TAG if "demo" in kinds else UNKNOWN_TAG if "unknown" in kinds else REAL_TAG]


def display_path(path: Path) -> str:
    """Relative to the working directory when below it (shorter, portable), else as given."""
    try:
        return os.path.relpath(path.resolve(), Path.cwd()) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def hardware(run: Run) -> str:
    meta = run.meta
    if not meta:
        return "hardware unknown (no meta.json)"
    if meta.get("gpu"):
        devices, nodes = run.cfg("trainer.devices", "auto"), run.cfg("trainer.num_nodes", 1) or 1
        n = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, list) else None)
        return f"{n * nodes} x {meta['gpu']}" if n and n * nodes > 1 else str(meta["gpu"])
    threads = meta.get("cpu_threads")
    return f"CPU {meta.get('host_cpu') or ''}".strip() + (f", {threads} threads" if threads else "")


def date(run: Run) -> str:
    d = str(run.meta.get("date", "") or "")
    return d.replace("T", " ")[:16] if d else "date unknown"


def command(run: Run) -> str:
    """meta.json's command, its program shown as `dlcv` (`python -m dlcv` records .../dlcv/__main__.py)."""
    text = str(run.meta.get("command") or "")
    if not text:
        return "the run's training command (no meta.json)"
    program, _, rest = text.partition(" ")
    p = Path(program)
    if p.name == "dlcv" or (p.name == "__main__.py" and p.parent.name == "dlcv"):
        program = "dlcv"
    return f"{program} {rest}".strip()


def versions(run: Run) -> str:
    m = run.meta
    return ", ".join(f"{k} {m[k]}" for k in ("python", "torch", "torchvision", "lightning") if m.get(k)) or "unknown"


def appendix(coll: Collection, errors: list[str], pdf_state: str) -> Section:
    """4.1 every run's role, data kind, date, hardware, software, config and command; 4.2 build notes."""
    if coll.runs:
        rows = [[f"`{r.name}`", f"{r.role.problem.upper()} {r.role.label}" if r.role.problem != "other" else "not used",
                 ", ".join(data_tags([r])), date(r), hardware(r), versions(r), f"`{display_path(r.file(CONFIG))}`"]
                for r in coll.runs]
        runs = [Table(["run", "role", "data", "date", "hardware", "software", "config"], rows,
                      "Run folders read by this report (role from the resolved config).", coll.runs, ["meta.json"]),
                Para("The command behind each run (meta.json):"),
                Code("\n".join(f"# {r.name}\n{command(r)}" for r in coll.runs))]
    else:
        runs = [not_available("Runs", "no folder with a config.yaml was found under the given paths")]
    notes: list = [Para(f"PDF: {pdf_state}.")]
    if missing := [f"`{r.name}`: {why}" for r in coll.runs for why in r.problems.values()] + coll.problems:
        notes += [Para("Files that were missing or unreadable (the sections that needed them say \"not available\"):"),
                  Bullets(missing)]
    if errors:
        notes += [Para("Sections that could not be built (internal errors):"), Bullets([f"`{e}`" for e in errors])]
    return Section("Appendix: runs, commands and build notes",
                   children=[Section("Every run in this report", blocks=runs), Section("Build notes", blocks=notes)])

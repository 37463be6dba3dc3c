"""The one owner of a run folder's files: their names, and a typed writer and reader for each.

    runs/<name>/config.yaml      the resolved config (written first: it marks a run folder)
                meta.json        command, hardware, versions, data kind, seeding
                epochs.csv       one row per epoch (every logged metric, lr, timing); log.txt: the same as text
                summary.json     the final numbers the demo and the report read
                eval/metrics.json, eval/iou.md   the best epoch's evaluation
                checkpoints/     last.ckpt, best.ckpt, epoch_XXX.ckpt (the engine's)
                model.pt         the exported model the graded scripts load (dlcv.io.export_model)
                logs/            live curves by Lightning's loggers: tensorboard/, csv/version_<k>/metrics.csv

Every job, `dlcv p2-settings`, the demo and the report go through these functions, so a file is
written one way and parsed one way. JSON has no NaN: non-finite numbers are written as null.
Stdlib only (YAML is parsed by omegaconf, imported when a config is read).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from dlcv.io import write_text

CONFIG = "config.yaml"
META = "meta.json"
EPOCHS = "epochs.csv"
LOG = "log.txt"
SUMMARY = "summary.json"
METRICS = "eval/metrics.json"
CHECKPOINTS = "checkpoints"
MODEL = "model.pt"
LOGS = "logs"
BYOL_LEARNS, BYOL_LEARNS_PNG = "byol_learns.json", "figures/byol_learns.png"  # the demo's BYOL-learns probe


# ------------------------------------------------------------------------------------ JSON
def finite_or_none(value: Any) -> Any:
    """NaN / inf -> None, recursively through dicts and lists (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> None:
    write_text(path, json.dumps(finite_or_none(data), indent=2) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON object; raises ValueError (naming the file) when it is anything else."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def write_summary(run_dir: str | Path, summary: dict) -> None:
    write_json(Path(run_dir) / SUMMARY, summary)


def read_summary(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / SUMMARY)


def write_meta(run_dir: str | Path, meta: dict) -> None:
    write_json(Path(run_dir) / META, meta)


def read_meta(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / META)


# ------------------------------------------------------------------------------------ config
def write_config(run_dir: str | Path, yaml_text: str) -> None:
    write_text(Path(run_dir) / CONFIG, yaml_text)


def read_config(run_dir: str | Path) -> dict:
    """The resolved config as a plain dict (not re-validated: an older run still reads)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(Path(run_dir) / CONFIG), resolve=False)
    if not isinstance(data, dict):
        raise ValueError(f"{Path(run_dir) / CONFIG}: not a mapping")
    return data


# ------------------------------------------------------------------------------------ epochs
def format_epoch(row: dict) -> str:
    """One epoch as the readable line of log.txt and of the console."""
    parts = [f"epoch {row['epoch']}"]
    for k, v in row.items():
        if k not in ("epoch", "step"):
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return " | ".join(parts)


def write_epochs(run_dir: str | Path, rows: Sequence[dict]) -> None:
    """epochs.csv (columns in first-seen order; a cell a row lacks stays empty) and log.txt."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(Path(run_dir) / EPOCHS, buf.getvalue())
    write_text(Path(run_dir) / LOG, "".join(format_epoch(r) + "\n" for r in rows))


def _number(text: Optional[str]) -> Any:
    if text is None or text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def read_epochs(run_dir: str | Path) -> list[dict]:
    """Rows of epochs.csv with numbers parsed (empty cells are None); [] when the file is absent.
    Raises ValueError, naming the file, when it is not a usable table."""
    path = Path(run_dir) / EPOCHS
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise ValueError(f"{path}: no 'epoch' column in its header")
        rows = []
        for i, row in enumerate(reader, 2):
            if None in row:  # more cells than header columns
                raise ValueError(f"{path}: line {i} has more cells than the header")
            parsed = {k: _number(v) for k, v in row.items()}
            if not isinstance(parsed.get("epoch"), (int, float)):
                raise ValueError(f"{path}: line {i}: epoch {row.get('epoch')!r} is not a number")
            rows.append(parsed)
    return rows


def column(rows: Iterable[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) pairs of one epochs.csv column, skipping empty and non-finite cells."""
    out = []
    for row in rows:
        e, v = row.get("epoch"), row.get(key)
        if isinstance(e, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v):
            out.append((int(e), float(v)))
    return out


# ------------------------------------------------------------------------------------ tables
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    """A GitHub Markdown table; columns in `numeric` are right-aligned; '|' in a cell is escaped."""
    numeric = set(numeric)

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "".join("---:|" if i in numeric else "---|" for i in range(len(header)))]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"

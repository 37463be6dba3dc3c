"""Run folders as the report sees them: found under the given paths, read tolerantly, given a role.

A run folder is any folder holding a `config.yaml` (the engine writes it first). Every artefact is
read on its own: a missing or corrupt file is recorded in `Run.problems` (file -> why) and the
report shows "not available: <why>" where it would have used it; reading never raises.

Roles come from the resolved config alone (never from file names, except P2's settings, whose only
difference IS their run name, and the demo's stand-in for the supervised P2 checkpoint):

    P1 A   task classify, dataset p1, model seed_a (the seed recipe) or resnet18_cifar (strong recipe)
    P1 B   task classify, dataset p1, model convnext_* or efficientnet_lite0
    P2     task byol (pre-training); task classify + dataset office named ..setting_<A-E> (the default
           prefix) or listed as a setting's run in <run.dir>/p2_settings/table.csv (the A-E table)
    P3 A   task segment, model fcn32s;  P3 B: task segment, model deeplabv3_resnet50
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

P1_A_MODELS = {"seed_a": "seed recipe", "resnet18_cifar": "strong recipe"}
P1_B_PREFIXES = ("convnext_", "efficientnet_lite0")
SETTING_NAME = re.compile(r"(?:^|_)setting_?([A-E])$")
MAX_SCAN_DEPTH = 3  # a parent folder is searched this many levels down for run folders


@dataclass(frozen=True)
class Role:
    problem: str  # p1 | p2 | p3 | other
    kind: str  # p1: A | B; p2: byol | setting | sl_standin; p3: A | B; other: ""
    label: str  # what the report calls it, e.g. "A (strong recipe)", "setting C"
    setting: str = ""  # P2 settings: A..E


@dataclass
class Run:
    path: Path
    config: Optional[dict] = None
    meta: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # artefact -> why it is not available
    role: Role = Role("other", "", "")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def data_kind(self) -> str:
        """demo | real | unknown (meta.json missing or silent)."""
        kind = str(self.meta.get("data_kind", "")).lower()
        return kind if kind in ("demo", "real") else "unknown"

    def cfg(self, dotted: str, default: Any = None) -> Any:
        """A value of the resolved config by dotted key, e.g. run.cfg("optim.lr")."""
        node: Any = self.config or {}
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def file(self, rel: str) -> Path:
        return self.path / rel

    def has(self, rel: str) -> bool:
        return (self.path / rel).is_file()

    def column(self, key: str) -> list[tuple[int, float]]:
        """(epoch, value) pairs of one epochs.csv column, skipping empty and non-finite cells."""
        out = []
        for row in self.epochs:
            e, v = row.get("epoch"), row.get(key)
            if isinstance(e, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v):
                out.append((int(e), float(v)))
        return out

    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.epochs:
            seen += [k for k in row if k not in seen]
        return seen


@dataclass
class SettingsTable:
    """<run.dir>/p2_settings/: the A-E table written by `dlcv p2-settings`."""
    path: Path
    rows: list[dict] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass
class Collection:
    runs: list[Run] = field(default_factory=list)
    settings_tables: list[SettingsTable] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)

    def by(self, problem: str, kind: Optional[str] = None) -> list[Run]:
        return [r for r in self.runs if r.role.problem == problem and (kind is None or r.role.kind == kind)]

    def named(self, name: str) -> Optional[Run]:
        return next((r for r in self.runs if r.name == name), None)


# ------------------------------------------------------------------------------------ reading
def _number(text: str) -> Any:
    if text is None or text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def read_epochs_csv(path: Path) -> list[dict]:
    """Rows of epochs.csv with numbers parsed; raises ValueError when it is not a usable table."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise ValueError("no 'epoch' column in its header")
        rows = []
        for i, row in enumerate(reader, 2):
            if None in row:  # more cells than header columns
                raise ValueError(f"line {i} has more cells than the header")
            parsed = {k: _number(v) for k, v in row.items()}
            if not isinstance(parsed.get("epoch"), (int, float)):
                raise ValueError(f"line {i}: epoch {row.get('epoch')!r} is not a number")
            rows.append(parsed)
    return rows


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _read_yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    return data


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_run(path: Path) -> Run:
    run = Run(Path(path))
    readers = (("config.yaml", _read_yaml, "config"), ("meta.json", _read_json, "meta"),
               ("summary.json", _read_json, "summary"), ("epochs.csv", read_epochs_csv, "epochs"))
    for rel, reader, attr in readers:
        f = run.path / rel
        if not f.is_file():
            run.problems[rel] = f"{rel} is missing"
            continue
        try:
            setattr(run, attr, reader(f))
        except Exception as exc:  # noqa: BLE001 - any unreadable file becomes "not available"
            run.problems[rel] = f"{rel} is unreadable ({_why(exc)})"
    run.role = role_of(run)
    return run


def load_settings_table(path: Path) -> SettingsTable:
    table = SettingsTable(Path(path))
    f = table.path / "table.csv"
    try:
        with open(f, newline="", encoding="utf-8") as fh:
            rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        if not rows or "setting" not in rows[0]:
            raise ValueError("no 'setting' column")
        table.rows = rows
    except FileNotFoundError:
        table.problems["table.csv"] = "table.csv is missing"
    except Exception as exc:  # noqa: BLE001
        table.problems["table.csv"] = f"table.csv is unreadable ({_why(exc)})"
    return table


def role_of(run: Run) -> Role:
    task, model = run.cfg("task"), str(run.cfg("model.name", "") or "")
    if task == "classify" and run.cfg("dataset") == "p1":
        if model in P1_A_MODELS:
            return Role("p1", "A", f"A ({P1_A_MODELS[model]})")
        if model.startswith(P1_B_PREFIXES):
            return Role("p1", "B", "B (pretrained, fine-tuned)")
        if "sl_standin" in run.name:
            return Role("p2", "sl_standin", "stand-in for pretrain_model_SL.pt")
    if task == "classify" and run.cfg("dataset") == "office":
        m = SETTING_NAME.search(run.name)
        if m:
            return Role("p2", "setting", f"setting {m.group(1)}", m.group(1))
    if task == "byol":
        return Role("p2", "byol", "BYOL pre-training")
    if task == "segment":
        if model == "fcn32s":
            return Role("p3", "A", "A (VGG16-FCN32s)")
        if model.startswith("deeplabv3"):
            return Role("p3", "B", "B (DeepLabv3-ResNet50)")
    return Role("other", "", "other")


# ------------------------------------------------------------------------------------ finding
def _scan(folder: Path, depth: int, found_runs: list[Path], found_tables: list[Path]) -> None:
    if (folder / "config.yaml").is_file():
        found_runs.append(folder)
        return  # a run folder's sub-folders (eval/, features/ ...) are its own
    if folder.name == "p2_settings" and (folder / "table.csv").exists():
        found_tables.append(folder)
        return
    if depth <= 0:
        return
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        _scan(child, depth - 1, found_runs, found_tables)


def discover(paths: Iterable[Path]) -> Collection:
    """Every run folder (and p2_settings table) at or below the given paths, each read once."""
    run_dirs: list[Path] = []
    tables: list[Path] = []
    roots = []
    for p in paths:
        p = Path(p)
        roots.append(p)
        _scan(p, MAX_SCAN_DEPTH, run_dirs, tables)
        if (p / "config.yaml").is_file() and (p.parent / "p2_settings").is_dir():
            _scan(p.parent / "p2_settings", 0, [], tables)  # a settings run given alone: its table
    seen: set[Path] = set()
    runs = []
    for d in run_dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run(d))
    table_objs, seen_t = [], set()
    for t in tables:
        if t.resolve() not in seen_t:
            seen_t.add(t.resolve())
            table_objs.append(load_settings_table(t))
    # settings fine-tuned with another --prefix: p2_settings/table.csv names each setting's run folder
    by_path = {r.path.resolve(): r for r in runs}
    for t in table_objs:
        for row in t.rows:
            name, where = str(row.get("setting", "")), row.get("run")
            run = by_path.get(Path(str(where)).resolve()) if where else None
            if run is not None and name in "ABCDE" and len(name) == 1 and run.role.problem == "other":
                run.role = Role("p2", "setting", f"setting {name}", name)
    order = {"p1": 0, "p2": 1, "p3": 2, "other": 3}
    runs.sort(key=lambda r: (order[r.role.problem], r.role.kind, r.role.setting, r.name))
    return Collection(runs, table_objs, roots)

"""Run folders as the report sees them: found under the given paths, read through dlcv.runfolder,
given a role. Nothing here draws or computes: sections read the artefacts the jobs wrote.

A run folder is any folder holding a config.yaml (the engine writes it first). Each of its four
core files is read on its own; a missing or unreadable one is recorded in `Run.problems` (file ->
why), the appendix lists it, and the sections that need it say "not available". Reading never raises.

Roles come from the resolved config (never from file names, except P2's settings, whose only
difference IS their run name, and the demo's stand-in for the supervised P2 checkpoint):

    P1 A   task classify, dataset p1, model seed_a (the seed recipe) or resnet18_cifar (strong recipe)
    P1 B   task classify, dataset p1, model convnext_* or efficientnet_lite0
    P2     task byol; task classify + dataset office named ..setting_<A-E>, or listed as a setting's
           run in <run.dir>/p2_settings/summary.json (written by `dlcv p2-settings`)
    P3 A   task segment, model fcn32s;  P3 B: task segment, model deeplabv3_*
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from dlcv import runfolder as rf

P1_A_MODELS = {"seed_a": "seed recipe", "resnet18_cifar": "strong recipe"}
P1_B_PREFIXES = ("convnext_", "efficientnet_lite0")
SETTING_NAME = re.compile(r"(?:^|_)setting_?([A-E])$")
SETTINGS_DIR = "p2_settings"
MAX_SCAN_DEPTH = 3  # a parent folder is searched this many levels down for run folders
CORE = ((rf.CONFIG, "config", rf.read_config), (rf.META, "meta", rf.read_meta),
        (rf.SUMMARY, "summary", rf.read_summary), (rf.EPOCHS, "epochs", rf.read_epochs))


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
    problems: dict[str, str] = field(default_factory=dict)  # file -> why it is not available
    role: Role = Role("other", "", "other")

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
        return rf.column(self.epochs, key)


@dataclass
class Collection:
    runs: list[Run] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable p2_settings/summary.json files

    def by(self, problem: str, kind: Optional[str] = None) -> list[Run]:
        return [r for r in self.runs if r.role.problem == problem and (kind is None or r.role.kind == kind)]


def why(exc: BaseException, path: Path) -> str:
    """An exception as a short reason, without the file's path (the report names the file itself)."""
    lines = str(exc).replace(f"{path}: ", "").strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def load_run(path: Path) -> Run:
    run = Run(Path(path))
    for rel, attr, reader in CORE:
        if not run.has(rel):
            run.problems[rel] = f"{rel} is missing"
            continue
        try:
            setattr(run, attr, reader(run.path))
        except Exception as exc:  # noqa: BLE001 - any unreadable file becomes "not available"
            run.problems[rel] = f"{rel} is unreadable ({why(exc, run.file(rel))})"
    run.role = role_of(run)
    return run


def role_of(run: Run) -> Role:
    task, model = run.cfg("task"), str(run.cfg("model.name", "") or "")
    if task == "classify" and run.cfg("dataset") == "p1":
        if model in P1_A_MODELS:
            return Role("p1", "A", f"A ({P1_A_MODELS[model]})")
        if model.startswith(P1_B_PREFIXES):
            return Role("p1", "B", "B (pretrained, fine-tuned)")
        if "sl_standin" in run.name:
            return Role("p2", "sl_standin", "stand-in for pretrain_model_SL.pt")
    if task == "classify" and run.cfg("dataset") == "office" and (m := SETTING_NAME.search(run.name)):
        return Role("p2", "setting", f"setting {m.group(1)}", m.group(1))
    if task == "byol":
        return Role("p2", "byol", "BYOL pre-training")
    if task == "segment" and model == "fcn32s":
        return Role("p3", "A", "A (VGG16-FCN32s)")
    if task == "segment" and model.startswith("deeplabv3"):
        return Role("p3", "B", "B (DeepLabv3-ResNet50)")
    return Role("other", "", "other")


def _scan(folder: Path, depth: int, runs: list[Path], tables: list[Path]) -> None:
    if (folder / rf.CONFIG).is_file():
        runs.append(folder)
        return  # a run folder's sub-folders (eval/, features/ ...) are its own
    if folder.name == SETTINGS_DIR and (folder / rf.SUMMARY).is_file():
        tables.append(folder / rf.SUMMARY)
        return
    if depth <= 0:
        return
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        _scan(child, depth - 1, runs, tables)


def _setting_roles(runs: list[Run], tables: list[Path], problems: list[str]) -> None:
    """Settings fine-tuned under another --prefix: p2_settings/summary.json names each one's run folder."""
    by_path = {r.path.resolve(): r for r in runs}
    for table in dict.fromkeys(t.resolve() for t in tables):
        try:
            rows = rf.read_json(table).get("rows") or []
        except (OSError, ValueError) as exc:
            problems.append(f"{table}: {why(exc, table)}")
            continue
        for row in rows:
            name, where = str(row.get("setting", "")), row.get("run")
            run = by_path.get(Path(str(where)).resolve()) if where else None
            if run is not None and len(name) == 1 and name in "ABCDE" and run.role.problem == "other":
                run.role = Role("p2", "setting", f"setting {name}", name)


def discover(paths: Iterable[Path]) -> Collection:
    """Every run folder at or below the given paths, each read once, in problem/role order."""
    coll, found, tables = Collection(), [], []
    for p in map(Path, paths):
        coll.roots.append(p)
        _scan(p, MAX_SCAN_DEPTH, found, tables)
        if (p / rf.CONFIG).is_file():  # a settings run given alone: its table beside it
            _scan(p.parent / SETTINGS_DIR, 0, [], tables)
    first: dict[Path, Path] = {}
    for d in found:  # each real folder read once, shown as first given (relative stays relative)
        first.setdefault(d.resolve(), d)
    coll.runs = [load_run(d) for d in first.values()]
    _setting_roles(coll.runs, tables, coll.problems)
    order = {"p1": 0, "p2": 1, "p3": 2, "other": 3}
    coll.runs.sort(key=lambda r: (order[r.role.problem], r.role.kind, r.role.setting, r.name))
    return coll

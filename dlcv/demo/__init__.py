"""Generated demo data with the exact ``hw1_data/`` layouts of all three problems.

The real HW1 data cannot be downloaded on the development machines, so the product ships this
generator. Its output has the real file names, extensions, CSV headers and mask colours (SPEC.md
section 1) and content a model can learn but not trivially (see :mod:`dlcv.demo.shapes`,
:mod:`dlcv.demo.p1`, :mod:`dlcv.demo.p2`, :mod:`dlcv.demo.p3`). It is seeded: the same seed and
scale give byte-identical files whatever the number of worker processes.

Completeness: a hidden ``.DEMO_DATA.partial`` file is written first and the marker ``DEMO_DATA``
last (after every file and CSV is written and counted). A folder without ``DEMO_DATA`` (or with
the partial file still present) is incomplete; :func:`ensure_demo_data` regenerates it. The
generator only deletes folders it owns (a marker or partial file is present); it refuses to
write over a non-empty folder without one (which may be the real data).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from dlcv.demo._common import run_jobs, write_text_atomic

__all__ = ["DemoScale", "write_demo_data", "ensure_demo_data", "read_demo_marker", "is_demo_data",
           "demo_problems", "MARKER", "PROBLEMS"]

MARKER = "DEMO_DATA"
PARTIAL = ".DEMO_DATA.partial"
PROBLEMS = ("p1", "p2", "p3")
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DemoScale:
    """How many files to generate (frozen; use ``dataclasses.replace`` to vary one field).

    The defaults are the quick demo scale: about 5,200 files, ~27 s of CPU in all (about half of it
    creating files on a slow disk), so well under 30 s on 2 idle cores. P1 at full size
    (450/50 per class + 5,000 test) takes about 80 s on 2 cores; P3 at 512x512 about 0.15 s of
    CPU per pair. :meth:`tiny` is for tests, :meth:`full` has the real data's sizes.
    """

    p1_train_per_class: int = 40
    p1_val_per_class: int = 10
    p1_test: int = 200
    p2_mini: int = 1000
    p2_office_train_per_class: int = 12
    p2_office_val_per_class: int = 4
    p2_office_test: int = 60
    p3_train: int = 120
    p3_val: int = 30
    p3_test: int = 20
    p3_size: int = 128

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"DemoScale.{f.name} must be a non-negative integer, got {value!r}")
        for name in ("p1_train_per_class", "p1_val_per_class", "p2_office_train_per_class",
                     "p2_office_val_per_class", "p3_train", "p3_val"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoScale.{name} must be at least 1")
        if self.p3_size < 16:
            raise ValueError(f"DemoScale.p3_size must be at least 16, got {self.p3_size}")

    @classmethod
    def tiny(cls) -> "DemoScale":
        """A few files per folder: for tests."""
        return cls(p1_train_per_class=2, p1_val_per_class=1, p1_test=12, p2_mini=16, p2_office_train_per_class=1,
                   p2_office_val_per_class=1, p2_office_test=8, p3_train=3, p3_val=2, p3_test=2, p3_size=64)

    @classmethod
    def full(cls) -> "DemoScale":
        """The real data's sizes (P1 22,500/2,500/5,000; P2 38,400 mini, ~3,951/406 Office; P3 512x512)."""
        return cls(p1_train_per_class=450, p1_val_per_class=50, p1_test=5000, p2_mini=38400,
                   p2_office_train_per_class=61, p2_office_val_per_class=6, p2_office_test=400,
                   p3_train=2000, p3_val=257, p3_test=313, p3_size=512)

    def for_problem(self, problem: str) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k.startswith(problem + "_")}


def _outputs(problem: str) -> tuple[str, ...]:
    from dlcv.demo import p1, p2, p3
    return {"p1": p1.p1_outputs, "p2": p2.p2_outputs, "p3": p3.p3_outputs}[problem]()


def _jobs(problem: str, root: Path, scale: DemoScale, seed: int):
    from dlcv.demo import p1, p2, p3
    if problem == "p1":
        return p1.p1_jobs(root, scale.p1_train_per_class, scale.p1_val_per_class, scale.p1_test, seed)
    if problem == "p2":
        return p2.p2_jobs(root, scale.p2_mini, scale.p2_office_train_per_class, scale.p2_office_val_per_class,
                          scale.p2_office_test, seed)
    return p3.p3_jobs(root, scale.p3_train, scale.p3_val, scale.p3_test, scale.p3_size, seed)


def _check_problems(problems: Iterable[str]) -> tuple[str, ...]:
    if isinstance(problems, str):
        problems = (problems,)
    problems = tuple(dict.fromkeys(problems))
    bad = [p for p in problems if p not in PROBLEMS]
    if bad or not problems:
        raise ValueError(f"problems must be a non-empty subset of {PROBLEMS}, got {problems!r}")
    return tuple(p for p in PROBLEMS if p in problems)


def _read_json_block(path: Path) -> Optional[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith("json: "):
            try:
                data = json.loads(line[len("json: "):])
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def read_demo_marker(root: str | Path) -> Optional[dict]:
    """The marker's content ``{"generator", "version", "problems": {p: {"seed", "scale", "counts"}}}``,
    or None when the folder holds no complete demo data (no marker, or an interrupted run)."""
    root = Path(root)
    if (root / PARTIAL).exists() or not (root / MARKER).is_file():
        return None
    return _read_json_block(root / MARKER)


def demo_problems(root: str | Path) -> set[str]:
    """Which problems of `root` are complete generated demo data."""
    marker = read_demo_marker(root)
    return set(marker.get("problems", {})) if marker else set()


def is_demo_data(root: str | Path, problem: Optional[str] = None) -> bool:
    """True if `root` (or its `problem` part) is complete generated demo data."""
    found = demo_problems(root)
    return bool(found) if problem is None else problem in found


def _marker_text(entries: dict) -> str:
    lines = ["DEMO DATA: generated by dlcv.demo.write_demo_data; NOT the real NTU DLCV HW1 data.",
             "Results computed on these files are demo results and say nothing about the real assignment.",
             "Regenerate with the same seed and scale to get byte-identical files."]
    for problem, entry in entries.items():
        scale = ", ".join(f"{k}={v}" for k, v in entry["scale"].items())
        lines.append(f"{problem}: seed={entry['seed']} {scale}")
    data = {"generator": "dlcv.demo", "version": GENERATOR_VERSION, "problems": entries}
    lines.append("json: " + json.dumps(data, sort_keys=True))
    return "\n".join(lines) + "\n"


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _previous_entries(root: Path, problems: tuple[str, ...]) -> dict:
    """The marker entries of the problems already generated under `root` (an interrupted run's
    partial file says which were complete). Raises FileExistsError for an unreadable marker, or
    when there is no marker and a target folder is non-empty: that may be the real data."""
    partial, marker = root / PARTIAL, root / MARKER
    if partial.exists():  # an interrupted run: keep only what it said was complete
        state = _read_json_block(partial) or {}
        return dict(state.get("problems", {}))
    if marker.exists():
        state = _read_json_block(marker)
        if state is None:
            raise FileExistsError(f"{marker}: unreadable demo marker; remove {root} to regenerate")
        return dict(state.get("problems", {}))
    owned_conflicts = []
    for problem in problems:
        for rel in _outputs(problem):
            path = root / rel
            if path.is_file() or (path.is_dir() and any(path.iterdir())):
                owned_conflicts.append(rel)
    if owned_conflicts:
        raise FileExistsError(
            f"{root} holds {', '.join(owned_conflicts)} but no {MARKER} marker: it may be the real data, "
            f"so the demo generator will not overwrite it. Choose an empty folder.")
    return {}


def _remove_outputs(root: Path, problems: tuple[str, ...]) -> None:
    """Delete the folders and files the generator writes for `problems` (only called once `root`
    is known to hold demo data, or nothing, there)."""
    for problem in problems:
        for rel in _outputs(problem):
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def write_demo_data(root: str | Path, scale: DemoScale = DemoScale(), seed: int = 0,
                    problems: Iterable[str] = PROBLEMS, workers: Optional[int] = None) -> dict[str, int]:
    """Generate demo data for `problems` under `root` (an ``hw1_data``-like folder).

    Returns the number of files per written folder, relative to `root`, e.g.
    ``{"p1_data/train_50": 2000, ..., "p3_data/train": 240}`` (P3 train/validation folders hold a
    sat image and a mask per id, so twice the number of ids). Existing demo folders of the same
    problems are replaced; demo data of the other problems stays (and stays in the marker).
    workers: processes to use (None: all CPUs, at most 8; 0 or 1: this process only).
    Raises FileExistsError if a target folder is non-empty and `root` holds no demo marker.
    """
    root = Path(root)
    problems = _check_problems(problems)
    if not isinstance(scale, DemoScale):
        raise TypeError(f"scale must be a DemoScale, got {type(scale).__name__}")
    seed = int(seed)
    root.mkdir(parents=True, exist_ok=True)

    partial, marker = root / PARTIAL, root / MARKER
    # the other problems' demo data stays, and stays in the marker
    kept = {p: e for p, e in _previous_entries(root, problems).items() if p not in problems and p in PROBLEMS}

    # from here until the marker is written the folder is visibly incomplete
    write_text_atomic(partial, "dlcv demo data generation in progress (or interrupted)\njson: "
                      + json.dumps({"problems": kept, "generating": list(problems)}, sort_keys=True) + "\n")
    if marker.exists():
        marker.unlink()
    _remove_outputs(root, problems)

    jobs, planned, entries = [], {}, dict(kept)
    for problem in problems:
        problem_jobs, counts = _jobs(problem, root, scale, seed)
        jobs += problem_jobs
        planned.update(counts)
        entries[problem] = {"seed": seed, "scale": scale.for_problem(problem), "counts": counts}
    run_jobs(jobs, workers)

    found = {rel: _count_files(root / rel) for rel in planned}
    if found != planned:
        wrong = {rel: (planned[rel], found[rel]) for rel in planned if found[rel] != planned[rel]}
        raise RuntimeError(f"demo data generation wrote unexpected file counts (expected, found): {wrong}")
    write_text_atomic(marker, _marker_text({p: entries[p] for p in PROBLEMS if p in entries}))
    partial.unlink()
    return found


def ensure_demo_data(root: str | Path, scale: DemoScale = DemoScale(), seed: int = 0,
                     problems: Iterable[str] = PROBLEMS, workers: Optional[int] = None) -> dict[str, int]:
    """Generate only what is missing: problems whose complete demo data with this seed and scale
    is already under `root` are kept as they are. Returns the counts of all requested problems."""
    root = Path(root)
    problems = _check_problems(problems)
    marker = read_demo_marker(root) or {}
    have = marker.get("problems", {}) if marker.get("version") == GENERATOR_VERSION else {}

    def intact(p: str) -> bool:
        entry = have.get(p)
        if not entry or entry.get("seed") != int(seed) or entry.get("scale") != scale.for_problem(p):
            return False
        return all((root / rel).is_dir() and _count_files(root / rel) == n for rel, n in entry["counts"].items())

    todo = [p for p in problems if not intact(p)]
    if todo:
        write_demo_data(root, scale, seed, todo, workers)
        have = (read_demo_marker(root) or {}).get("problems", {})
    counts: dict[str, int] = {}
    for p in problems:
        counts.update(have[p]["counts"])
    return counts

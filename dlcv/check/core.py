"""`run_check`: every row of the pre-submission check, the table, check.json."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dlcv.check.hidden import SPECS
from dlcv.check.problems import Context, problem_rows
from dlcv.check.rows import FAIL, PASS, Row, guarded, write_report
from dlcv.check.runner import graded_env, write_guard
from dlcv.check.shell import check_script
from dlcv.check.sources import source_rows
from dlcv.errors import DataError

SCRIPTS = ("hw1_1.sh", "hw1_2.sh", "hw1_3.sh", "hw1_download_ckpt.sh")
PROBLEMS = tuple(SPECS)
WORK_MARKER = ".dlcv-check"


def rule_row(repo: Path, script: str) -> Row:
    check = f"{script} rules"
    limit = "python3; no rm/cp/mv/mkdir/cd/pip/sudo/CUDA_*"
    path = repo / script
    if not path.is_file():
        return Row(check, FAIL, "missing", limit, f"{path} not found (the graders run it from the repo root)")
    violations = check_script(path.read_text(encoding="utf-8", errors="replace"))
    if violations:
        return Row(check, FAIL, f"{len(violations)} violation(s)", limit, "; ".join(map(str, violations)))
    return Row(check, PASS, "follows the rules", limit)


def data_row(data: Path, demo: bool) -> Row:
    if not data.is_dir():
        return Row("hw1_data", FAIL, "missing", "a hw1_data folder",
                   f"{data} is not a folder: pass the hw1_data folder with --data")
    return Row("hw1_data", PASS, str(data) + (" (DEMO DATA)" if demo else ""), "a hw1_data folder")


def work_folder(out: Path) -> Path:
    """<out>/check_work, emptied (only when it is the check's own: it holds the marker file)."""
    work = out / "check_work"
    if work.exists():
        if not (work / WORK_MARKER).is_file():
            raise DataError(f"{work} exists and is not dlcv check's working folder: choose another --out")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / WORK_MARKER).write_text("dlcv check's working folder: deleted and rewritten by each check\n")
    return work


def guarded_label(make_label) -> str:
    try:
        return make_label()
    except Exception as exc:  # noqa: BLE001 - e.g. a broken torch install: the runs will show it
        return f"unknown ({type(exc).__name__}: {exc})"


def is_demo(data: Path) -> bool:
    from dlcv.demo import is_demo_data

    return data.is_dir() and is_demo_data(data)


def run_check(repo: Path, data: Path, out: Path, checkpoints: dict[str, Path], problems=PROBLEMS,
              timeout: float = 600.0, demo: bool | None = None) -> tuple[list[Row], dict]:
    """(rows, meta) of the whole check; writes <out>/check.json. Raises nothing for bad input."""
    from dlcv.check.timing import device_label

    repo, data, out = repo.resolve(), data.resolve(), out.resolve()
    demo = is_demo(data) if demo is None else demo
    device = guarded_label(device_label)
    rows = [data_row(data, demo)]
    rows += [rule_row(repo, s) for s in SCRIPTS]
    rows += guarded("hw1_checkpoints.txt", lambda: source_rows(repo, problems, checkpoints, demo))
    work_rows = guarded("working folder", lambda: [Row("working folder", PASS, str(work_folder(out)))])
    if work_rows[0].result == FAIL:
        rows += work_rows
    else:
        work = out / "check_work"
        env = graded_env(write_guard(work / "guard"), checkpoints)
        ctx = Context(repo, data, work, env, checkpoints, timeout, device, demo, data.is_dir())
        for problem in problems:
            rows += guarded(f"{problem} checkpoint", lambda p=problem: problem_rows(ctx, p))
    meta = {"demo": demo, "repo": str(repo), "data": str(data), "device": device, "python": sys.executable,
            "problems": list(problems), "timeout_s": timeout,
            "checkpoints": {p: str(checkpoints[p]) for p in problems}}
    write_report(out / "check.json", rows, meta)
    return rows, meta


def title(meta: dict) -> str:
    label = ("dlcv check -- DEMO: generated demo data, so the scores are demo numbers (the baselines are for "
             "the real hw1_data)" if meta["demo"] else "dlcv check")
    return f"{label}\nrepo {meta['repo']}, data {meta['data']}, device {meta['device']}\n"

"""Run one graded script as the graders do, under the course-environment import guard.

`bash <repo>/hw1_N.sh ...` from the repo root, with `python3` = this interpreter's (its bin folder
first on PATH), a sitecustomize.py of dlcv.graded.guard first on PYTHONPATH (any import of a
non-course package by dlcv code then fails as it would in the graders' environment), the rest of
the user's environment kept except the DLCV_* variables the graders do not set, and a time limit
after which the whole process group is killed.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dlcv.graded.guard import sitecustomize_source
from dlcv.io import write_text

KEPT_DLCV_VARIABLES = {"DLCV_OFFLINE"}  # the only DLCV_* passed on: it forbids downloads, never adds one


@dataclass
class ScriptRun:
    returncode: int | None  # None: killed at the time limit
    seconds: float
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def write_guard(folder: Path) -> Path:
    """A folder holding the guard's sitecustomize.py, to put first on PYTHONPATH."""
    write_text(folder / "sitecustomize.py", sitecustomize_source())
    return folder


def graded_env(guard_dir: Path, checkpoints: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCV_") or k in KEPT_DLCV_VARIABLES}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]).rstrip(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard_dir), env.get("PYTHONPATH", "")]))
    for problem, path in checkpoints.items():
        env[f"DLCV_{problem.upper()}_CKPT"] = str(path)
    return env


def run_script(repo: Path, script: str, args: list[str], env: dict[str, str], timeout: float) -> ScriptRun:
    """`bash <repo>/<script> args...` from the repo root; killed (with its children) after `timeout` s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", str(repo / script), *args], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, stderr = proc.communicate()
        returncode = None
    return ScriptRun(returncode, time.perf_counter() - t0, stderr or "")


ERROR_LINE = re.compile(r"^(error:|\w+(Error|Exception)\b|unreadable:)")


def failure_reason(run: ScriptRun, timeout: float, limit: int = 400) -> str:
    """Why a run failed, in one line: the time limit, or the error its stderr ends with."""
    if run.returncode is None:
        return f"did not finish within {timeout:.0f} s (killed)"
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    last = errors[-1] if errors else (lines[-1] if lines else "no message on stderr")
    reason = f"exit status {run.returncode}: {last}"
    return reason if len(reason) <= limit else reason[:limit - 3] + "..."

"""Small shared helpers for the tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dlcv.bench.digits import write_digits_p1  # noqa: F401 - the tests' real P1-layout images

REPO = Path(__file__).resolve().parent.parent


def run_dlcv(*args: str, check: bool = True, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m dlcv ...` in a subprocess (as a user runs it), from the repo root."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "dlcv", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"dlcv {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def run_graded(script: str, *args, ckpt: Path | None = None, home: Path, extra_env: dict | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """`bash hw1_N.sh ...` as a grader runs it: python3 on the PATH (this venv's), nothing else set up.
    HOME lies apart from the outputs: libraries may create ~/.cache there. One OpenMP thread keeps
    it fast on a busy 2-core machine."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "DLCV_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", **(extra_env or {})}
    if ckpt is not None:
        env[f"DLCV_P{script[4]}_CKPT"] = str(ckpt)
    return subprocess.run(["bash", str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def stopped_after(full: Path, stopped: Path, epoch: int) -> Path:
    """A copy of the finished run `full` as if it had been stopped after `epoch`: its checkpoints
    gone but that epoch's, which becomes last.ckpt (what `--resume` continues from)."""
    shutil.copytree(full, stopped)
    for f in (stopped / "checkpoints").glob("*.ckpt"):
        f.unlink()
    shutil.copy(full / "checkpoints" / f"epoch_{epoch:03d}.ckpt", stopped / "checkpoints" / "last.ckpt")
    return stopped

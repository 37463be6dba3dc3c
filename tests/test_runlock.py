"""One training process per run folder (dlcv.runlock), with real processes: a second `dlcv train`
of a run that a live process trains stops at once naming the holder, --overwrite and --resume
included, and touches nothing; once the holder is SIGKILLed its lock no longer blocks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, run_dlcv

pytestmark = pytest.mark.slow


def _train_args(root: Path, runs: Path, epochs: int) -> list[str]:
    return ["train", str(REPO / "configs/demo/p1_seed_a.yaml"), f"data.root={root}", f"run.dir={runs}",
            "run.name=locked", f"trainer.epochs={epochs}", "features.enabled=false", "trainer.progress=false"]


def _wait_for_lock_holder(lock: Path, pid: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("the first run never took the lock")


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_ino for p in folder.rglob("*") if p.is_file()}


def test_second_process_is_refused_until_the_holder_dies(demo_root, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "dlcv", *_train_args(demo_root, runs, epochs=10_000)],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock_holder(runs / "locked" / ".lock", first.pid, first)
        while not (runs / "locked" / "checkpoints" / "last.ckpt").exists():  # it has written something to lose
            assert first.poll() is None
            time.sleep(0.2)
        first.send_signal(signal.SIGSTOP)  # alive and holding the lock, but writing nothing meanwhile
        before = _listing(runs / "locked")
        for extra in ([], ["--overwrite"], ["--resume"]):
            proc = run_dlcv(*_train_args(demo_root, runs, epochs=1), *extra, check=False)
            assert proc.returncode == 2, (extra, proc.stderr)
            assert f"is being trained by pid {first.pid}" in proc.stderr and "since" in proc.stderr, proc.stderr
        assert _listing(runs / "locked") == before  # nothing deleted, replaced or added
        first.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        assert first.poll() is None  # the holder trains on
    finally:
        first.kill()
        first.wait()
    # SIGKILL released the lock with the process: no stale lock blocks the next run
    proc = run_dlcv(*_train_args(demo_root, runs, epochs=1), "--overwrite", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((runs / "locked" / ".lock").read_text())["pid"] != first.pid

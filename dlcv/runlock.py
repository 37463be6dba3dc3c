"""One training process per run folder: an exclusive lock on `<run>/.lock`, held while it trains.

Two `dlcv train` runs with the same run.name would otherwise write into one folder, and a second
`--overwrite` would delete the first one's checkpoints while it trains. The lock is an OS file
lock (`fcntl.flock`) on an open file descriptor, so the kernel releases it when the holder exits
in any way, SIGKILL included: a lock left by a dead process never blocks (no stale-lock
heuristics). The file also records who holds it (pid, host, since when, command) for the error
message. Caveat: flock is per host; on a network file system shared by several hosts it may not
exclude a process on another host.

Under DDP only the global rank 0 process takes the lock: the other ranks are the same run.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Sequence

from dlcv.errors import RunLockedError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # run folder -> open descriptor holding its lock (for the process's life)


def _is_global_rank_zero() -> bool:
    if "RANK" in os.environ:  # torchrun / SLURM through Lightning
        return os.environ["RANK"] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (no holder recorded)"
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
            f"(`{' '.join(info.get('command', []))}`)")


def acquire(run_dir: Path, command: Sequence[str] = ()) -> None:
    """Lock `run_dir` for this process, or raise RunLockedError naming the holder.

    Idempotent within a process; released when the process exits."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held or not _is_global_rank_zero():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockedError(f"{run_dir} is being trained by {_holder(path)}; wait for it to finish, stop it, "
                             f"or choose another run.name (--overwrite and --resume are refused while it runs)"
                             ) from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": dt.datetime.now().isoformat(timespec="seconds"),
            "command": list(command)}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(info) + "\n").encode())
    _held[run_dir] = fd

"""One worker process per pipeline (own peak RSS, nothing shared); the parent sends commands one at
a time, so only one process computes at any moment."""
from __future__ import annotations

import os
import traceback

from dlcv.bench.pipelines import OursPipeline, RefPipeline


def _worker_main(conn, side: str, job: dict) -> None:
    """A worker process: builds one pipeline, then runs the parent's commands one at a time."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("DLCV_OFFLINE", "1")
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's start/stop chatter
    import torch

    torch.set_num_threads(job["threads"])
    try:
        pipe = OursPipeline(job) if side == "ours" else RefPipeline(job)
        conn.send(("ok", None))
    except Exception:  # noqa: BLE001 - reported to the parent with its traceback
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            cmd, kwargs = conn.recv()
        except EOFError:
            return
        if cmd == "stop":
            return
        try:
            conn.send(("ok", getattr(pipe, cmd)(**kwargs)))
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class BenchError(RuntimeError):
    pass


class Worker:
    def __init__(self, ctx, side: str, job: dict):
        self.side = side
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, side, job), daemon=True,
                                name=f"dlcv-bench-{side}")
        self.proc.start()
        child.close()
        self._expect = "start"

    def send(self, cmd: str, **kwargs) -> None:
        self.conn.send((cmd, kwargs))

    def recv(self):
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise BenchError(f"the {self.side} worker died (exit code {self.proc.exitcode}); "
                             f"out of memory?") from None
        if status == "error":
            raise BenchError(f"{self.side} worker failed:\n{value}")
        return value

    def call(self, cmd: str, **kwargs):
        self.send(cmd, **kwargs)
        return self.recv()

    def close(self) -> None:
        try:
            self.conn.send(("stop", {}))
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=10)

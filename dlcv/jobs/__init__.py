"""One job per task; `dlcv train` looks the task up here. Each job is imported only when it runs
(it pulls in its models), so the table maps a task to a function that imports it."""
from __future__ import annotations

from types import ModuleType
from typing import Callable


def _classify() -> ModuleType:
    from dlcv.jobs import classify

    return classify


def _byol() -> ModuleType:
    from dlcv.jobs import byol

    return byol


def _segment() -> ModuleType:
    from dlcv.jobs import segment

    return segment


JOBS: dict[str, Callable[[], ModuleType]] = {"classify": _classify, "byol": _byol, "segment": _segment}


def job_module(task: str) -> ModuleType:
    if task not in JOBS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(JOBS)}")
    return JOBS[task]()

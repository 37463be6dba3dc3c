"""One job per task; `dlcv train` looks the task up here (imported lazily: each pulls in its models)."""
from __future__ import annotations

import importlib

JOBS = {
    "classify": "dlcv.jobs.classify",
    "byol": "dlcv.jobs.byol",
    "segment": "dlcv.jobs.segment",
}


def job_module(task: str):
    if task not in JOBS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(JOBS)}")
    return importlib.import_module(JOBS[task])

"""What the graded prediction commands (hw1_1.sh, hw1_2.sh, hw1_3.sh) share.

Unreadable inputs never stop the others: every readable input gets its row/mask, the unreadable
ones are listed on stderr, and the exit status is non-zero so nobody mistakes it for a clean run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dlcv.errors import CheckpointError

EXIT_SOME_UNREADABLE = 2


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is a regular file (nothing can be made under it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_writable(path: Path, is_folder: bool = False) -> None:
    """Fail before any compute when the output cannot be written.

    is_folder=False: `path` is an output FILE whose folder must exist; True: an output FOLDER that
    exists or can be created. Permission bits are checked with os.access, which says "writable"
    to root whatever the mode; what stops everyone, root included, is a regular file where a
    folder should be (ENOTDIR), and that is reported here by name.
    """
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise OSError(f"{path}: cannot write there: {blocker} is a file, not a folder")
    if is_folder:
        if path.exists() and not path.is_dir():
            raise OSError(f"{path}: output folder is a file")
        folder = path if path.is_dir() else next(p for p in path.parents if p.exists())
    else:
        if path.is_dir():
            raise OSError(f"{path}: is a folder; the output must be a file name (e.g. {path / 'pred.csv'})")
        folder = path.parent
        if not folder.exists():
            raise OSError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"{folder}: output folder is not writable")


def check_model_kind(config: dict, checkpoint, dataset: str, script: str) -> None:
    """A classification model.pt trained on `dataset`, else a CheckpointError saying what it is
    (a P1 model on Office images would write 50-class labels without any complaint)."""
    task, trained_on = config.get("task"), config.get("dataset")
    if task != "classify" or trained_on != dataset:
        what = f"task {task!r}" + (f", dataset {trained_on!r}" if trained_on else "")
        raise CheckpointError(f"{checkpoint}: {script} needs a classifier trained on {dataset!r} "
                              f"(task 'classify', dataset {dataset!r}); this checkpoint is {what}")


def report_unreadable(errors: list[str]) -> int:
    for e in errors:
        print(f"unreadable: {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} input(s) could not be read; their predictions are missing", file=sys.stderr)
        return EXIT_SOME_UNREADABLE
    return 0

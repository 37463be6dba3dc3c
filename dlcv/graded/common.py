"""What the graded prediction commands (hw1_1.sh, hw1_2.sh, hw1_3.sh) share.

Unreadable inputs never stop the others: every readable input gets its row/mask, the unreadable
ones are listed on stderr, and the exit status is non-zero so nobody mistakes it for a clean run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


EXIT_SOME_UNREADABLE = 2


def check_output_writable(path: Path) -> None:
    """Fail before any compute when the output cannot be written."""
    folder = path if path.is_dir() else path.parent
    if not folder.exists():
        raise OSError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"{folder}: output folder is not writable")


def report_unreadable(errors: list[str]) -> int:
    for e in errors:
        print(f"unreadable: {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} input(s) could not be read; their predictions are missing", file=sys.stderr)
        return EXIT_SOME_UNREADABLE
    return 0

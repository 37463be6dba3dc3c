"""The graded prediction outputs (hw1_1.sh, hw1_2.sh, hw1_3.sh call these).

Unreadable inputs never stop the others: every readable input gets its row/mask, the unreadable
ones are listed on stderr, and the exit status is non-zero so nobody mistakes it for a clean run.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

from dlcv.engine import load_model_file
from dlcv.io import write_text

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


def predict_p1(checkpoint: str | Path, image_dir: str | Path, out_csv: str | Path) -> int:
    """`filename,label` for every image of a folder (any names), sorted by file name."""
    from dlcv.data.p1 import load_p1_folder
    from dlcv.jobs.classify import predict_labels

    out_csv = Path(out_csv)
    check_output_writable(out_csv)
    config, state = load_model_file(checkpoint)
    images = load_p1_folder(image_dir, labelled=False, on_error="collect")
    labels = predict_labels(config, state, images.images)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "label"])
    writer.writerows(zip(images.names, (int(v) for v in labels)))
    write_text(out_csv, buf.getvalue())
    print(f"wrote {len(images.names)} predictions to {out_csv}", file=sys.stderr)
    return report_unreadable(images.meta["errors"])

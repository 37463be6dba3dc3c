"""hw1_2.sh: P2 (Office-Home) class predictions for the images a CSV lists, as `id,filename,label`.

The output has exactly the input CSV's rows, in its order, with its `id` and `filename` cells
unchanged and `label` filled with the predicted class. A row whose image is missing or unreadable
keeps an EMPTY label (rather than being dropped: row i of the output stays row i of the input),
is reported on stderr, and the exit status is non-zero. A malformed CSV (header, duplicates,
paths leaving the folder; see dlcv.data.office) is an error before anything is written.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from dlcv.data.office import HEADER, IMAGE_SIZE, load_office_csv_images
from dlcv.graded.common import check_model_kind, check_output_writable, report_unreadable
from dlcv.graded.models import predict_labels
from dlcv.io import load_model_file, write_text


def predict(checkpoint: str | Path, images_csv: str | Path, image_dir: str | Path, out_csv: str | Path,
            tta: bool = False) -> int:
    """Write `out_csv` for the rows of `images_csv` (images under `image_dir`); returns the exit
    code. tta: average with the horizontally mirrored image."""
    out_csv = Path(out_csv)
    check_output_writable(out_csv)
    config, state = load_model_file(checkpoint)
    check_model_kind(config, checkpoint, "office", "hw1_2.sh")
    # the same Resize(128) + CenterCrop(128) decoding as training; the model resizes further itself
    rows, images = load_office_csv_images(images_csv, image_dir, IMAGE_SIZE)
    readable_labels = (predict_labels(config, state, images.images, source=str(checkpoint), tta=tta)
                       if len(images) else [])
    predicted = iter(int(v) for v in readable_labels)
    labels = [next(predicted) if ok else "" for ok in images.meta["readable"]]

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((r.id, r.filename, label) for r, label in zip(rows, labels))
    write_text(out_csv, buf.getvalue())
    print(f"wrote {len(rows)} rows ({len(images)} predicted) to {out_csv}", file=sys.stderr)
    return report_unreadable(images.meta["errors"])

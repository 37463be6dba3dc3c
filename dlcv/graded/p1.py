"""hw1_1.sh: P1 class predictions for a folder of images, as `filename,label` rows."""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from dlcv.data.p1 import load_p1_folder
from dlcv.graded.common import check_model_kind, check_output_writable, report_unreadable
from dlcv.graded.models import predict_labels
from dlcv.io import load_model_file, write_text


def predict(checkpoint: str | Path, image_dir: str | Path, out_csv: str | Path, tta: bool = False) -> int:
    """`filename,label` for every image of a folder (any names), sorted by file name; returns the
    exit code. tta: average with the horizontally mirrored image."""
    out_csv = Path(out_csv)
    check_output_writable(out_csv)
    config, state = load_model_file(checkpoint)
    check_model_kind(config, checkpoint, "p1", "hw1_1.sh")
    images = load_p1_folder(image_dir, labelled=False, on_error="collect")
    labels = predict_labels(config, state, images.images, source=str(checkpoint), tta=tta)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "label"])
    writer.writerows(zip(images.names, (int(v) for v in labels)))
    write_text(out_csv, buf.getvalue())
    print(f"wrote {len(images.names)} predictions to {out_csv}", file=sys.stderr)
    return report_unreadable(images.meta["errors"])

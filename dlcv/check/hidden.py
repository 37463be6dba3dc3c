"""Hidden-test stand-ins made from the validation data, in the hidden test sets' forms (SPEC 1):

* P1: `p1_data/val_50/*.png` copied under anonymous names (`00000.png`, shuffled: no label in the
  name, no label order in the sorted names);
* P2: `p2_data/office/val.csv`'s images copied as `0000.jpg`... and listed, in a shuffled order, in a
  CSV whose label column is blanked (`None` and empty alternately, both occur in the hidden CSV);
* P3: `p3_data/validation/*_sat.jpg` only (the masks are the ground truth, kept apart).
"""
from __future__ import annotations

import csv
import io
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dlcv.errors import DataError
from dlcv.io import write_text


class Spec(NamedTuple):
    script: str
    hidden_n: int  # images in the hidden test set
    metric: str
    baselines: tuple[float, float]  # the course's simple / strong baselines
    source: str  # the validation data the stand-in is made of, relative to hw1_data


SPECS = {
    "p1": Spec("hw1_1.sh", 5000, "accuracy", (0.75, 0.86), "p1_data/val_50"),
    "p2": Spec("hw1_2.sh", 406, "accuracy (setting C)", (0.36, 0.40), "p2_data/office/val.csv"),
    "p3": Spec("hw1_3.sh", 313, "mIoU (official)", (0.69, 0.73), "p3_data/validation"),
}
REAL_P3_SIZE = (512, 512)
P1_NAME = re.compile(r"(\d+)_.+\.png")


@dataclass
class HiddenSet:
    problem: str
    args: list[str]  # the graded script's arguments: its inputs, then its output
    output: Path
    inputs: list  # P1/P3: input file names; P2: the CSV's (id, filename) rows in order
    truth: dict | Path = field(default_factory=dict)  # P1/P2: {file name: label}; P3: ground-truth folder
    image_dir: Path | None = None

    @property
    def n(self) -> int:
        return len(self.inputs)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path} not found ({what}); is --data the hw1_data folder?")
    return path


def _p1(data: Path, work: Path, limit: int | None) -> HiddenSet:
    src = _need(data / SPECS["p1"].source, "P1 validation images")
    files = sorted(p for p in src.iterdir() if P1_NAME.fullmatch(p.name))
    if not files:
        raise DataError(f"{src}: no {{label}}_{{id}}.png images")
    random.Random(0).shuffle(files)
    images = _fresh(work / "p1_images")
    truth = {}
    for i, path in enumerate(files[:limit]):
        name = f"{i:05d}.png"
        shutil.copyfile(path, images / name)
        truth[name] = int(P1_NAME.fullmatch(path.name).group(1))
    out = work / "p1_pred.csv"
    return HiddenSet("p1", [str(images), str(out)], out, sorted(truth), truth, images)


def _p2(data: Path, work: Path, limit: int | None) -> HiddenSet:
    from dlcv.data.office import HEADER, read_office_csv

    val_csv = _need(data / SPECS["p2"].source, "P2 Office-Home validation CSV")
    rows = read_office_csv(val_csv, val_csv.parent / "val")
    rows = [r for r in rows if r.label is not None]
    random.Random(0).shuffle(rows)
    images = _fresh(work / "p2_images")
    listed, truth = [], {}
    for i, row in enumerate(rows[:limit]):
        name = f"{i:04d}{Path(row.filename).suffix}"
        shutil.copyfile(val_csv.parent / "val" / row.filename, images / name)
        listed.append((row.id, name))
        truth[name] = row.label
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((i, name, "None" if k % 2 else "") for k, (i, name) in enumerate(listed))
    test_csv, out = work / "p2_test.csv", work / "p2_pred.csv"
    write_text(test_csv, buf.getvalue())
    return HiddenSet("p2", [str(test_csv), str(images), str(out)], out, listed, truth, images)


def _p3(data: Path, work: Path, limit: int | None) -> HiddenSet:
    src = _need(data / SPECS["p3"].source, "P3 validation pairs")
    sats = sorted(p for p in src.glob("*_sat.jpg") if (src / p.name.replace("_sat.jpg", "_mask.png")).is_file())
    if not sats:
        raise DataError(f"{src}: no xxxx_sat.jpg with its xxxx_mask.png")
    images, truth = _fresh(work / "p3_images"), _fresh(work / "p3_truth")
    for path in sats[:limit]:
        shutil.copyfile(path, images / path.name)
        mask = path.name.replace("_sat.jpg", "_mask.png")
        shutil.copyfile(src / mask, truth / mask)
    out = work / "p3_pred"  # not created: hw1_3.sh must create it
    if out.exists():
        shutil.rmtree(out)
    return HiddenSet("p3", [str(images), str(out)], out, [p.name for p in sats[:limit]], truth, images)


def make_hidden_set(problem: str, data: Path, work: Path, limit: int | None = None) -> HiddenSet:
    """The stand-in of `problem`'s hidden test set in `work` (its first `limit` images if given)."""
    return {"p1": _p1, "p2": _p2, "p3": _p3}[problem](Path(data), Path(work), limit)

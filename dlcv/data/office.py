"""Problem 2 Office-Home readers: `id,filename,label` CSVs + an image folder.

The CSV is the list of images (the graded test set is read from it, never from the folder), so
its rules are strict and every violation is a DataError naming the CSV, the line and the problem:

* header: exactly `id,filename,label`, in that order. A UTF-8 byte-order mark is tolerated (Excel
  writes one). Extra columns are REJECTED: hw1_2.sh must write "the same columns as the input
  CSV", and silently dropping or carrying unknown columns would both be guesses.
* rows: exactly three fields; blank lines are skipped; an empty CSV (no header, or no rows) is an
  error. `id` is kept verbatim as text (the output writes it back unchanged).
* label: an integer 0..64, or `None` / empty for unlabelled (test) rows. Training and validation
  splits must be fully labelled.
* filename: relative to the image folder and inside it: absolute paths, `..` parts and symlinks
  that resolve outside the folder are rejected, and so are control characters (NUL, tab, line
  breaks); a filename listed twice is rejected.
* a listed file that does not exist is an error for training/validation; for prediction
  (`on_error="collect"`) it is reported, and the row keeps an empty label.

Images of any size become `image_size` x `image_size` (default 128) exactly as the course's
supervised checkpoint was trained: torchvision Resize(128) (shorter side) then CenterCrop(128).
Training/validation splits are decoded once into a cache (`dlcv.data.cache`).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Optional

import numpy as np

from dlcv.data.cache import cached_array
from dlcv.data.images import read_many, read_rgb, resize_center_crop
from dlcv.data.sets import ImageSet, stack_chw
from dlcv.errors import DataError

NUM_CLASSES = 65
IMAGE_SIZE = 128
HEADER = ("id", "filename", "label")
UNLABELLED = ("", "none")  # label cells meaning "unknown" (compared case-insensitively)


@dataclass(frozen=True)
class OfficeRow:
    """One CSV row: `line` is its 1-based line number in the file (for messages)."""

    id: str
    filename: str
    label: Optional[int]
    line: int


# ----------------------------------------------------------------------------------------------
# the CSV


def _check_header(csv_path: Path, header: list[str]) -> None:
    if header and header[0].startswith("\ufeff"):
        header = [header[0][1:], *header[1:]]
    if tuple(header) != HEADER:
        raise DataError(f"{csv_path}: header must be exactly {','.join(HEADER)} (in that order), "
                        f"found {','.join(header) or '(empty line)'}")


def _parse_label(csv_path: Path, line: int, cell: str, num_classes: int) -> Optional[int]:
    text = cell.strip()
    if text.lower() in UNLABELLED:
        return None
    try:
        label = int(text)
    except ValueError:
        raise DataError(f"{csv_path}, line {line}: label {cell!r} is not an integer, 'None' or empty") from None
    if not 0 <= label < num_classes:
        raise DataError(f"{csv_path}, line {line}: label {label} is outside 0..{num_classes - 1}")
    return label


def _check_filename(csv_path: Path, line: int, name: str, folder: Path) -> None:
    """The file must lie inside `folder`: no absolute path, no `..`, no symlink leading out."""
    if not name:
        raise DataError(f"{csv_path}, line {line}: empty filename")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # a NUL cannot even be asked of the OS
        raise DataError(f"{csv_path}, line {line}: filename {name!r} contains a control character")
    if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
            or PureWindowsPath(name).drive):
        raise DataError(f"{csv_path}, line {line}: filename {name!r} is an absolute path; "
                        f"it must be relative to {folder}")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise DataError(f"{csv_path}, line {line}: filename {name!r} contains '..'; "
                        f"it must stay inside {folder}")
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise DataError(f"{csv_path}, line {line}: filename {name!r} resolves to {target}, "
                        f"outside {folder} (a symlink?)")


def read_office_csv(csv_path: str | Path, image_dir: str | Path,
                    num_classes: int = NUM_CLASSES) -> list[OfficeRow]:
    """The rows of an Office CSV, in file order, checked against the rules of the module docstring
    (everything except that the files exist and are images)."""
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    try:
        # bytes, not read_text: universal newlines would turn a quoted "\r" inside a cell into "\n"
        # (the csv module wants the text untranslated, newline="")
        text = csv_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{csv_path}: CSV file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: not a UTF-8 text file ({exc})") from None
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found (listed by {csv_path})")
    # the byte-order mark goes before parsing: `\ufeff"id",...` would otherwise keep its quotes
    lines = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = next(lines, None)
    if header is None:
        raise DataError(f"{csv_path}: empty CSV (expected the header {','.join(HEADER)} and one row per image)")
    _check_header(csv_path, header)
    rows: list[OfficeRow] = []
    seen: dict[str, int] = {}
    for fields in lines:
        line = lines.line_num
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(HEADER):
            raise DataError(f"{csv_path}, line {line}: {len(fields)} fields, expected {len(HEADER)} "
                            f"({','.join(HEADER)})")
        row_id, name, label = fields
        _check_filename(csv_path, line, name, image_dir)
        if name in seen:
            raise DataError(f"{csv_path}, line {line}: filename {name!r} is listed twice (first on line {seen[name]})")
        seen[name] = line
        rows.append(OfficeRow(row_id, name, _parse_label(csv_path, line, label, num_classes), line))
    if not rows:
        raise DataError(f"{csv_path}: no image rows after the header")
    return rows


# ----------------------------------------------------------------------------------------------
# the images


def _reader(image_size: int):
    resize = resize_center_crop(image_size)
    return lambda path: read_rgb(path, resize=resize)


def load_office_split(office_dir: str | Path, split: str, cache_dir: Optional[str | Path] = None,
                      image_size: int = IMAGE_SIZE, num_classes: int = NUM_CLASSES) -> ImageSet:
    """`<office_dir>/<split>.csv` + `<office_dir>/<split>/` as an ImageSet of (N, 3, S, S) uint8.

    Every row must be labelled 0..num_classes-1 and every file readable (DataError otherwise).
    The decoded array is cached (keyed by the files, their sizes/mtimes, the size and the folder).
    """
    office_dir = Path(office_dir)
    csv_path, folder = office_dir / f"{split}.csv", office_dir / split
    rows = read_office_csv(csv_path, folder, num_classes)
    unlabelled = [r for r in rows if r.label is None]
    if unlabelled:
        raise DataError(f"{csv_path}, line {unlabelled[0].line}: the {split} split must be labelled "
                        f"({len(unlabelled)} row(s) have no label)")
    files = [folder / r.filename for r in rows]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: listed in {csv_path} but not found"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))

    def build() -> np.ndarray:
        arrays, _ = read_many(files, _reader(image_size))
        return stack_chw(arrays)

    images = cached_array(cache_dir, f"office-{split}-{image_size}px", files,
                          {"size": image_size, "folder": str(folder.resolve()), "v": 1}, build)
    labels = np.array([r.label for r in rows], dtype=np.int64)
    return ImageSet(images=images, labels=labels, names=[r.filename for r in rows], root=folder,
                    meta={"ids": [r.id for r in rows], "csv": str(csv_path), "errors": []})


def load_office_csv_images(csv_path: str | Path, image_dir: str | Path,
                           image_size: int = IMAGE_SIZE) -> tuple[list[OfficeRow], ImageSet]:
    """For prediction (hw1_2.sh): all CSV rows in file order + the images of the readable ones.

    Labels may be anything legal (usually `None`/empty). A row whose file is missing or not an
    image does not stop the others: it is left out of the ImageSet, its message is in
    `meta["errors"]`, and `meta["readable"][i]` says whether row i has an image. Never cached
    (a test set is read once, and its errors must be seen every time).
    """
    rows = read_office_csv(csv_path, image_dir)
    folder = Path(image_dir)
    arrays, errors = read_many([folder / r.filename for r in rows], _reader(image_size), on_error="collect")
    readable = [a is not None for a in arrays]
    good = [a for a in arrays if a is not None]
    images = stack_chw(good) if good else np.zeros((0, 3, image_size, image_size), dtype=np.uint8)
    labels = np.array([-1 if r.label is None else r.label for r, ok in zip(rows, readable) if ok],
                      dtype=np.int64)
    names = [r.filename for r, ok in zip(rows, readable) if ok]
    return rows, ImageSet(images=images, labels=labels, names=names, root=folder,
                          meta={"errors": errors, "readable": readable, "csv": str(csv_path)})


__all__ = ["NUM_CLASSES", "IMAGE_SIZE", "HEADER", "OfficeRow", "read_office_csv", "load_office_split",
           "load_office_csv_images"]

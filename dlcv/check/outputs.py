"""The graded outputs checked exactly as the graders read them.

* P1 CSV: header exactly `filename,label`; one row per input image (bare file name, none missing,
  none extra, none twice), in any order; integer labels 0..49.
* P2 CSV: header exactly `id,filename,label`; the input CSV's rows, in its order, with the same id
  and filename; integer labels 0..64.
* P3 folder: one `xxxx_mask.png` per `xxxx_sat.jpg` and no other .png (the official tool pairs the
  .png files by sorted name); each a PNG, 8-bit RGB, of the input's size (512x512 on the real
  data), holding only the 7 legal colours exactly.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dlcv.check.hidden import HiddenSet

NUM_CLASSES = {"p1": 50, "p2": 65}
INTEGER = re.compile(r"\d+")
SHOWN = 5  # problems listed per output


class OutputCheck(NamedTuple):
    problems: list[str]
    figure: str
    predictions: dict  # P1/P2: {file name: label} of the valid rows; P3: {}


def _show(names) -> str:
    names = list(names)
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def _read_csv(path: Path, header: tuple[str, ...]) -> tuple[list[list[str]], OutputCheck | None]:
    """(rows after the header, None), or ([], the failed check) for a missing file or a wrong header."""
    if not path.is_file():
        return [], OutputCheck([f"{path} was not written"], "no file", {})
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], OutputCheck([f"{path.name} is not UTF-8 ({exc})"], "not UTF-8", {})
    lines = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    if not lines or tuple(lines[0]) != header:
        found = ",".join(lines[0]) if lines else "an empty file"
        return [], OutputCheck([f"header must be exactly {','.join(header)}, found {found!r}"], "wrong header", {})
    return lines[1:], None


def _label(cell: str, problem: str) -> int | None:
    if INTEGER.fullmatch(cell) and int(cell) < NUM_CLASSES[problem]:
        return int(cell)
    return None


def _check_labels(rows: list[tuple[str, str]], problem: str, problems: list[str]) -> dict:
    predictions, bad = {}, []
    for name, cell in rows:
        label = _label(cell, problem)
        if label is None:
            bad.append(f"{name}={cell!r}")
        else:
            predictions[name] = label
    if bad:
        problems.append(f"{len(bad)} label(s) not an integer 0..{NUM_CLASSES[problem] - 1}: {_show(bad)}")
    return predictions


def check_p1(hidden: HiddenSet) -> OutputCheck:
    rows, failed = _read_csv(hidden.output, ("filename", "label"))
    if failed:
        return failed
    problems: list[str] = []
    short = [i + 2 for i, row in enumerate(rows) if len(row) != 2]
    if short:
        problems.append(f"line(s) {_show(map(str, short))} do not have 2 fields")
    names = [row[0] for row in rows if len(row) == 2]
    expected = set(hidden.inputs)
    missing, extra = expected - set(names), set(names) - expected
    twice = {n for n, k in Counter(names).items() if k > 1}
    for what, found in (("missing", missing), ("not an input image", extra), ("listed twice", twice)):
        if found:
            problems.append(f"{len(found)} file name(s) {what}: {_show(sorted(found))}")
    predictions = _check_labels([tuple(r) for r in rows if len(r) == 2], "p1", problems)
    return OutputCheck(problems, f"{len(rows)} rows for {len(expected)} images", predictions)


def check_p2(hidden: HiddenSet) -> OutputCheck:
    rows, failed = _read_csv(hidden.output, ("id", "filename", "label"))
    if failed:
        return failed
    problems: list[str] = []
    if len(rows) != hidden.n:
        problems.append(f"{len(rows)} rows, the input CSV has {hidden.n}")
    wrong = [f"line {i + 2}" for i, (row, want) in enumerate(zip(rows, hidden.inputs))
             if len(row) != 3 or (row[0], row[1]) != want]
    if wrong:
        problems.append(f"{len(wrong)} row(s) differ from the input CSV's id,filename in its order: {_show(wrong)}")
    predictions = _check_labels([(r[1], r[2]) for r in rows if len(r) == 3], "p2", problems)
    return OutputCheck(problems, f"{len(rows)} rows for {hidden.n} listed images", predictions)


def _mask_problem(path: Path, size: tuple[int, int]) -> str | None:
    from PIL import Image

    from dlcv.data.masks import CLASS_COLORS

    with Image.open(path) as img:
        if img.format != "PNG" or img.mode != "RGB":
            return f"{path.name}: {img.format} {img.mode}, not an 8-bit RGB PNG"
        if img.size != size:
            return f"{path.name}: {img.size[0]}x{img.size[1]}, the input is {size[0]}x{size[1]}"
        rgb = np.asarray(img).astype(np.uint32)
    codes = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    legal = {(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in CLASS_COLORS}
    illegal = [f"#{int(c):06x}" for c in codes if int(c) not in legal]
    return f"{path.name}: colours outside the 7 legal ones: {_show(illegal)}" if illegal else None


def check_p3(hidden: HiddenSet) -> OutputCheck:
    from PIL import Image

    out = hidden.output
    if not out.is_dir():
        return OutputCheck([f"{out} was not created"], "no folder", {})
    expected = {name.replace("_sat.jpg", "_mask.png"): name for name in hidden.inputs}
    pngs = {p.name for p in out.iterdir() if p.name.lower().endswith(".png")}
    problems = [f"{len(found)} mask(s) {what}: {_show(sorted(found))}"
                for what, found in (("missing", set(expected) - pngs), ("extra .png (no such input)", pngs - set(expected)))
                if found]
    sizes = set()
    bad = []
    for mask, sat in sorted(expected.items()):
        if mask in pngs:
            with Image.open(hidden.image_dir / sat) as img:
                sizes.add(img.size)
            issue = _mask_problem(out / mask, img.size)
            if issue:
                bad.append(issue)
    if bad:
        problems.append(f"{len(bad)} mask(s) wrong: " + "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else ""))
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)) or "-"
    return OutputCheck(problems, f"{len(pngs & set(expected))}/{len(expected)} masks; inputs {shown}", {})


def check_output(hidden: HiddenSet) -> OutputCheck:
    return {"p1": check_p1, "p2": check_p2, "p3": check_p3}[hidden.problem](hidden)

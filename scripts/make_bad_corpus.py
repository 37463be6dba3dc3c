#!/usr/bin/env python3
"""Generate the bad-input corpus: every kind of broken or unusual input the readers and the graded
scripts must handle (see tests/data/bad/README.md for what each reader does with each item).

    python scripts/make_bad_corpus.py [OUT_DIR]      # default: tests/data/bad/corpus (git-ignored)

The corpus is small (~60 files, ~40 KB) and byte-for-byte deterministic (fixed seed, fixed encoder
settings, hand-built PNG chunks), so the tests generate it into a temporary folder instead of
committing binaries: `tests/test_bad_inputs.py` calls :func:`make_corpus` from a session fixture.

Layout (SIZE = 32, the P1 image size; every image item is SIZE x SIZE unless its name says otherwise):

    images/   one file per image item (ok.png, truncated.png, gray16.png, wrong_size.jpg, ...)
    masks/    P3 mask items (ok_mask.png, off_palette_mask.png, red_mask.png)
    office/   images/ (ok.jpg, ok2.jpg, ok3.png) + one CSV per CSV item (no_header.csv, ...)
    p3_sat_without_mask/   0000 pair + 0001_sat.jpg alone
    p3_mask_without_sat/   0000 pair + 0001_mask.png alone
    empty_folder/          nothing in it
    a_file/                NOT a folder: a regular file; outputs "inside" it cannot be written,
                           even by root (ENOTDIR; chmod does not stop root, this does)
"""
from __future__ import annotations

import io
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
SEED = 20231
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "bad" / "corpus"
MARKER = ".bad_corpus"

# the legal P3 colours (class 0..6), as in dlcv.data.masks (kept literal: this script needs no dlcv)
LEGAL = np.array([[0, 255, 255], [255, 255, 0], [255, 0, 255], [0, 255, 0], [0, 0, 255], [255, 255, 255],
                  [0, 0, 0]], dtype=np.uint8)

# item name -> (file under the corpus, what it is). The tests iterate over these.
IMAGE_ITEMS: dict[str, tuple[str, str]] = {
    "ok_png": ("images/ok.png", "valid 8-bit RGB PNG (reference)"),
    "ok_jpg": ("images/ok.jpg", "valid RGB JPEG (reference)"),
    "truncated_png": ("images/truncated.png", "first half of a valid PNG"),
    "corrupt_png": ("images/corrupt.png", "PNG whose compressed IDAT stream is garbage (chunk CRCs valid)"),
    "truncated_jpg": ("images/truncated.jpg", "first half of a valid JPEG"),
    "corrupt_jpg": ("images/corrupt.jpg", "JPEG start marker followed by garbage (no frame header)"),
    "zero_png": ("images/zero.png", "zero-byte file named .png"),
    "zero_jpg": ("images/zero.jpg", "zero-byte file named .jpg"),
    "text_png": ("images/text.png", "a text file named .png"),
    "text_jpg": ("images/text.jpg", "a text file named .jpg"),
    "gray_png": ("images/gray.png", "8-bit grayscale PNG (mode L)"),
    "gray_jpg": ("images/gray.jpg", "grayscale JPEG (mode L)"),
    "cmyk_jpg": ("images/cmyk.jpg", "CMYK JPEG"),
    "rgba_png": ("images/rgba.png", "RGBA PNG, half transparent"),
    "palette_png": ("images/palette.png", "palette PNG (mode P, 7 colours)"),
    "gray16_png": ("images/gray16.png", "16-bit grayscale PNG (mode I;16)"),
    "rgb16_png": ("images/rgb16.png", "16-bit-per-channel RGB PNG (48 bpp)"),
    "wrong_size_png": ("images/wrong_size.png", "valid PNG of 31x32 (P1 wants 32x32)"),
    "wrong_size_jpg": ("images/wrong_size.jpg", "valid JPEG of 48x40"),
}
MASK_ITEMS: dict[str, tuple[str, str]] = {
    "ok_mask": ("masks/ok_mask.png", "mask in the 7 legal colours"),
    "off_palette_mask": ("masks/off_palette_mask.png", "mask with off-palette colours (JPEG-like noise)"),
    "red_mask": ("masks/red_mask.png", "mask with red (code 4) pixels"),
}
CSV_ITEMS: dict[str, tuple[str, str]] = {
    "csv_ok": ("office/ok.csv", "valid id,filename,label CSV (reference)"),
    "csv_no_header": ("office/no_header.csv", "rows without the id,filename,label header"),
    "csv_extra_columns": ("office/extra_columns.csv", "header and rows with a 4th column"),
    "csv_duplicate": ("office/duplicate.csv", "a filename listed twice"),
    "csv_escaping": ("office/escaping.csv", "a filename with ../ leaving the image folder"),
    "csv_absolute": ("office/absolute.csv", "an absolute filename"),
    "csv_missing_image": ("office/missing_image.csv", "a row whose image does not exist"),
    "csv_empty": ("office/empty.csv", "zero-byte CSV"),
}
LAYOUT_ITEMS: dict[str, tuple[str, str]] = {
    "sat_without_mask": ("p3_sat_without_mask", "P3 folder: 0001_sat.jpg has no mask"),
    "mask_without_sat": ("p3_mask_without_sat", "P3 folder: 0001_mask.png has no image"),
    "empty_folder": ("empty_folder", "a folder with no files"),
    "not_a_folder": ("a_file", "a regular file where a folder is expected (unwritable output parent)"),
}
ITEMS = {**IMAGE_ITEMS, **MASK_ITEMS, **CSV_ITEMS, **LAYOUT_ITEMS}


def _rgb(rng: np.random.Generator, w: int = SIZE, h: int = SIZE) -> np.ndarray:
    """Smooth-ish random RGB content (JPEG keeps it recognisable)."""
    small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _jpg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, subsampling=2, optimize=False)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_raw(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes], idat=None) -> bytes:
    """A PNG built chunk by chunk (filter type 0 on every row); `idat` replaces the compressed data."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = idat if idat is not None else zlib.compress(b"".join(b"\x00" + r for r in rows), 6)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _write(out: Path, rel: str, data: bytes) -> None:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_corpus(out: str | Path) -> dict[str, Path]:
    """Write the corpus under `out` (replacing a previous one) and return {item name: path}."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():  # never delete a folder this script did not write
            raise FileExistsError(f"{out} is not empty and holds no {MARKER} marker; choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("generated by scripts/make_bad_corpus.py; safe to delete\n")
    rng = np.random.default_rng(SEED)
    rgb = _rgb(rng)
    ok_png, ok_jpg = _png_bytes(Image.fromarray(rgb)), _jpg_bytes(Image.fromarray(rgb))
    text = b"this is not an image, just text with an image's extension\n"

    _write(out, "images/ok.png", ok_png)
    _write(out, "images/ok.jpg", ok_jpg)
    _write(out, "images/truncated.png", ok_png[: len(ok_png) // 2])
    garbage = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    _write(out, "images/corrupt.png", _png_raw(SIZE, SIZE, 8, 2, [], idat=b"\x00\x00" + garbage))
    _write(out, "images/truncated.jpg", ok_jpg[: len(ok_jpg) // 2])
    _write(out, "images/corrupt.jpg", b"\xff\xd8" + garbage)
    _write(out, "images/zero.png", b"")
    _write(out, "images/zero.jpg", b"")
    _write(out, "images/text.png", text)
    _write(out, "images/text.jpg", text)
    gray = Image.fromarray(rgb).convert("L")
    _write(out, "images/gray.png", _png_bytes(gray))
    _write(out, "images/gray.jpg", _jpg_bytes(gray))
    _write(out, "images/cmyk.jpg", _jpg_bytes(Image.fromarray(rgb).convert("CMYK")))
    alpha = np.zeros((SIZE, SIZE), np.uint8)
    alpha[:, SIZE // 2:] = 255  # left half transparent, right half opaque
    _write(out, "images/rgba.png", _png_bytes(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")))
    pal = Image.fromarray(rng.integers(0, 7, (SIZE, SIZE), dtype=np.uint8), "P")
    pal.putpalette(LEGAL.ravel().tolist() + [0] * (768 - LEGAL.size))
    _write(out, "images/palette.png", _png_bytes(pal))
    g16 = (np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE)).astype(">u2")
    _write(out, "images/gray16.png", _png_raw(SIZE, SIZE, 16, 0, [r.tobytes() for r in g16]))
    rgb16 = (rgb.astype(np.uint16) * 257).astype(">u2")  # 8-bit value v -> 16-bit v * 257 (same level)
    _write(out, "images/rgb16.png", _png_raw(SIZE, SIZE, 16, 2, [r.tobytes() for r in rgb16]))
    _write(out, "images/wrong_size.png", _png_bytes(Image.fromarray(_rgb(rng, SIZE - 1, SIZE))))
    _write(out, "images/wrong_size.jpg", _jpg_bytes(Image.fromarray(_rgb(rng, 48, 40))))

    # masks
    classes = rng.integers(0, 7, (SIZE, SIZE)).astype(np.uint8)
    mask = LEGAL[classes]
    _write(out, "masks/ok_mask.png", _png_bytes(Image.fromarray(mask)))
    noise = rng.integers(-100, 101, mask.shape)  # stays on the same side of 128 only sometimes: that is the point
    off = np.clip(mask.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    _write(out, "masks/off_palette_mask.png", _png_bytes(Image.fromarray(off)))
    red = mask.copy()
    red[:4, :4] = (255, 0, 0)  # 16 pure red pixels
    red[4, :3] = (200, 100, 30)  # 3 more that binarise to red
    _write(out, "masks/red_mask.png", _png_bytes(Image.fromarray(red)))

    # office: images + one CSV per item (filenames relative to office/images)
    _write(out, "office/images/ok.jpg", ok_jpg)
    _write(out, "office/images/ok2.jpg", _jpg_bytes(Image.fromarray(_rgb(rng, 60, 45))))
    _write(out, "office/images/ok3.png", ok_png)
    csvs = {
        "ok.csv": "id,filename,label\n0,ok.jpg,3\n1,ok2.jpg,None\n2,ok3.png,\n",
        "no_header.csv": "0,ok.jpg,3\n1,ok2.jpg,4\n",
        "extra_columns.csv": "id,filename,label,domain\n0,ok.jpg,3,art\n",
        "duplicate.csv": "id,filename,label\n0,ok.jpg,3\n1,ok2.jpg,4\n2,ok.jpg,5\n",
        "escaping.csv": "id,filename,label\n0,ok.jpg,3\n1,../ok.csv,4\n",
        "absolute.csv": "id,filename,label\n0,/etc/hostname,3\n",
        "missing_image.csv": "id,filename,label\n0,ok.jpg,3\n1,not_there.jpg,4\n2,ok2.jpg,5\n",
        "empty.csv": "",
    }
    for name, body in csvs.items():
        _write(out, f"office/{name}", body.encode())

    # P3 layouts
    for folder, lone in (("p3_sat_without_mask", "0001_sat.jpg"), ("p3_mask_without_sat", "0001_mask.png")):
        _write(out, f"{folder}/0000_sat.jpg", ok_jpg)
        _write(out, f"{folder}/0000_mask.png", _png_bytes(Image.fromarray(mask)))
        _write(out, f"{folder}/{lone}", ok_jpg if lone.endswith(".jpg") else _png_bytes(Image.fromarray(mask)))
    (out / "empty_folder").mkdir()
    _write(out, "a_file", b"a regular file, not a folder\n")
    return {name: out / rel for name, (rel, _) in ITEMS.items()}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    paths = make_corpus(out)
    for name, path in paths.items():
        print(f"{name:20s} {path.relative_to(out)}")
    print(f"{len(paths)} items written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

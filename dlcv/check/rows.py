"""The rows of `dlcv check`: one per check, printed as a table and written to check.json."""
from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from dlcv.io import write_text

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"  # SKIP: not run because of a FAIL above it
COLUMNS = ("check", "result", "figure", "limit")


@dataclass
class Row:
    check: str
    result: str
    figure: str = ""
    limit: str = ""
    note: str = ""  # the reason of a FAIL/WARN/SKIP, or what the figure means

    def __post_init__(self) -> None:
        if self.result not in (PASS, WARN, FAIL, SKIP):
            raise ValueError(f"result must be PASS, WARN, FAIL or SKIP, got {self.result!r}")


def failed(rows: Iterable[Row]) -> bool:
    return any(r.result == FAIL for r in rows)


def error_reason(exc: BaseException) -> str:
    """One line for an unexpected error: its type, message and where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"


def guarded(check: str, make_rows: Callable[[], list[Row]]) -> list[Row]:
    """The rows of `make_rows`, or one FAIL row with the reason when it raises (never a traceback)."""
    try:
        return make_rows()
    except Exception as exc:  # noqa: BLE001 - any failure of a check is that check's failed row
        return [Row(check, FAIL, note=error_reason(exc))]


def format_table(rows: list[Row], title: str = "") -> str:
    """Plain text: the four columns, with each row's note on an indented line below it."""
    cells = [COLUMNS] + [(r.check, r.result, r.figure, r.limit) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(values) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [title] if title else []
    out += [line(COLUMNS), line("-" * w for w in widths)]
    for r, values in zip(rows, cells[1:]):
        out.append(line(values))
        if r.note and r.result != PASS:
            out.append(f"    {r.result.lower()}: {r.note}")
    counts = {k: sum(r.result == k for r in rows) for k in (PASS, WARN, FAIL, SKIP)}
    verdict = "FAILED" if counts[FAIL] else "passed"
    out.append(f"{verdict}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return "\n".join(out)


def write_report(path: Path, rows: list[Row], meta: dict) -> None:
    """check.json: the meta data, whether it passed, and every row (atomically)."""
    body = {**meta, "passed": not failed(rows), "rows": [asdict(r) for r in rows]}
    write_text(path, json.dumps(body, indent=2) + "\n")

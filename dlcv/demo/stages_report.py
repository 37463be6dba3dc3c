"""The last part of `dlcv demo`: the report of every demo run (HTML, Markdown, PDF) in <out>/report."""
from __future__ import annotations

from pathlib import Path

from dlcv.demo.stage import Stage


def build(runs: Path, out: Path) -> dict:
    from dlcv.report.build import build_report

    result = build_report([runs], out / "report")
    print(f"    {result.html}\n    {result.markdown}")
    print(f"    {result.pdf} ({result.pages} pages)" if result.pdf else f"    no PDF: {result.pdf_note}")
    for error in result.errors:
        print(f"    warning: section not built: {error}")
    if result.pdf_failed:
        raise RuntimeError(f"the report's PDF could not be printed: {result.pdf_note}")
    return result.as_dict()


def stages(data_root: Path, runs: Path, out: Path, fresh: bool) -> list[Stage]:
    # fresh does not apply: the report is always rebuilt from the run folders (it retrains nothing)
    return [Stage("Report (HTML, Markdown, PDF) from the run folders", lambda: build(runs, out))]

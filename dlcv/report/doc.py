"""The report as data: sections of blocks (paragraphs, tables, figures, call-outs), rendered by
`dlcv.report.html` and `dlcv.report.markdown` from the same objects, so the two never disagree.

Text fields are plain text with two inline marks: **bold** and `code`. Renderers escape
everything else. Tables and figures carry a `Source` (the runs and files their numbers come from)
and tags (e.g. "demo data"), and are numbered in document order by `number_document`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Union

if TYPE_CHECKING:
    from dlcv.report.runs import Run


@dataclass
class Source:
    """Where the numbers of a table or figure come from: runs (each with its command, hardware,
    date and data kind, see `provenance`) and the files read inside them."""
    runs: Sequence["Run"]
    files: Sequence[str] = ()
    note: str = ""


@dataclass
class Para:
    text: str
    cls: str = ""  # "lead" | "muted" | ""


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Callout:
    kind: str  # demo | na | note | warn
    title: str
    text: str = ""


@dataclass
class Code:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str
    source: Optional[Source] = None
    tags: list[str] = field(default_factory=list)
    numeric: set[int] = field(default_factory=set)  # right-aligned columns
    small: bool = False
    number: int = 0


@dataclass
class Image:
    path: str  # relative to the report folder, e.g. "assets/p1_seed_a_pca.png"
    alt: str
    label: str = ""  # sub-caption under the image in a multi-image figure


@dataclass
class Figure:
    images: list[Image]
    caption: str
    source: Optional[Source] = None
    tags: list[str] = field(default_factory=list)
    size: str = "normal"  # normal | wide | small | tall (architecture graphs)
    number: int = 0


@dataclass
class Columns:
    """Blocks side by side (e.g. an architecture graph beside its layer table); stacked in Markdown."""
    columns: list[list]
    widths: list[int] = field(default_factory=list)  # relative widths, default equal


Block = Union[Para, Bullets, Callout, Code, Table, Figure, Columns]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    children: list["Section"] = field(default_factory=list)
    anchor: str = ""
    page_break: bool = False  # start on a new page in print
    question: str = ""  # the assignment's question this section answers (shown under the title)
    number: str = ""

    def add(self, *blocks: Block) -> "Section":
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    subtitle: str
    front: list[Block]
    sections: list[Section]


def not_available(what: str, why: str) -> Callout:
    return Callout("na", f"{what}: not available", why)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def walk(sections: Sequence[Section]):
    for s in sections:
        yield s
        yield from walk(s.children)


def number_document(doc: Document) -> None:
    """Section numbers (1, 1.1, ...), anchors, and table/figure numbers in reading order."""
    counts = {"table": 0, "figure": 0}
    used: set[str] = set()

    def visit(sections: Sequence[Section], prefix: str) -> None:
        for i, s in enumerate(sections, 1):
            s.number = f"{prefix}{i}"
            base = s.anchor or f"s{s.number.replace('.', '-')}-{slug(s.title)[:40]}"
            anchor, k = base, 2
            while anchor in used:
                anchor, k = f"{base}-{k}", k + 1
            used.add(anchor)
            s.anchor = anchor
            number_blocks(s.blocks)
            visit(s.children, f"{s.number}.")

    def number_blocks(blocks) -> None:
        for b in blocks:
            if isinstance(b, Table):
                counts["table"] += 1
                b.number = counts["table"]
            elif isinstance(b, Figure):
                counts["figure"] += 1
                b.number = counts["figure"]
            elif isinstance(b, Columns):
                for col in b.columns:
                    number_blocks(col)

    number_blocks(doc.front)
    visit(doc.sections, "")


INLINE = re.compile(r"(\*\*[^*]+\*\*|`[^`]+`)")


def inline_spans(text: str) -> list[tuple[str, str]]:
    """[(kind, text)] with kind in plain | bold | code."""
    spans = []
    for part in INLINE.split(text):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**") and len(part) > 4:
            spans.append(("bold", part[2:-2]))
        elif part.startswith("`") and part.endswith("`") and len(part) > 2:
            spans.append(("code", part[1:-1]))
        else:
            spans.append(("plain", part))
    return spans

"""The report as data: sections of blocks, numbered and written out by dlcv.report.render (as
Markdown once; the HTML page and the PDF are made from that Markdown).

Text fields are Markdown-lite: **bold**, `code` and *italic*; the renderer escapes everything else.
Tables and figures carry the runs and files their numbers come from: the renderer adds the data
tag ("demo data") and the source line from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, Union

if TYPE_CHECKING:
    from dlcv.report.runs import Run


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Callout:  # a boxed note; the HTML styles it by its title ("...: not available", "DEMO ...")
    title: str
    text: str = ""


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str
    runs: Sequence["Run"] = ()
    files: Sequence[str] = ()
    numeric: Sequence[int] = ()  # right-aligned columns


@dataclass
class Figure:
    images: Sequence[str]  # paths relative to the report folder, shown side by side
    caption: str
    runs: Sequence["Run"] = ()
    files: Sequence[str] = ()


Block = Union[Para, Bullets, Code, Callout, Table, Figure]


@dataclass
class Section:
    title: str
    question: str = ""  # the assignment's question this section answers
    blocks: list[Block] = field(default_factory=list)
    children: list["Section"] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    front: list[Block]
    sections: list[Section]
    footer: str = ""


def not_available(what: str, why: str) -> Callout:
    return Callout(f"{what}: not available", why)

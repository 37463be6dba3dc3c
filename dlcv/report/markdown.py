"""The report as GitHub-flavoured Markdown (report.md), from the same document as the HTML."""
from __future__ import annotations

from typing import Optional

from dlcv.report.doc import Bullets, Callout, Code, Columns, Document, Figure, Para, Section, Source, Table
from dlcv.report.provenance import source_lines


def _cell(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _tags(values) -> str:
    return "".join(f" `[{t}]`" for t in values)


def _source(src: Optional[Source]) -> list[str]:
    if src is None:
        return []
    lines = []
    for line in source_lines(src.runs, src.files):
        files = f" ({', '.join(line['files'])})" if line["files"] else ""
        lines.append(f"<sub>Source: run **{line['run']}**{files}, config `{line['config']}` · "
                     f"`{line['command']}` · {line['hardware']} · {line['date']} · {line['data']}</sub>")
    if src.note:
        lines.append(f"<sub>{src.note}</sub>")
    return ["<br>\n".join(lines), ""] if lines else []


def block(b) -> list[str]:
    if isinstance(b, Para):
        return [b.text, ""]
    if isinstance(b, Bullets):
        return [f"- {i}" for i in b.items] + [""]
    if isinstance(b, Callout):
        label = {"demo": "DEMO", "na": "NOT AVAILABLE", "warn": "WARNING"}.get(b.kind, "NOTE")
        out = [f"> **{label}: {b.title}**" if label not in b.title.upper() else f"> **{b.title}**"]
        if b.text:
            out += [">", f"> {b.text}"]
        return out + [""]
    if isinstance(b, Code):
        return ["```", b.text, "```", ""]
    if isinstance(b, Table):
        out = [f"**Table {b.number}.** {b.caption}{_tags(b.tags)}", ""]
        out.append("| " + " | ".join(_cell(h) for h in b.header) + " |")
        out.append("|" + "".join("---:|" if i in b.numeric else "---|" for i in range(len(b.header))))
        out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
        return out + [""] + _source(b.source)
    if isinstance(b, Figure):
        out = []
        for im in b.images:
            out.append(f"![{im.alt}]({im.path})" + (f"  \n*{im.label}*" if im.label else ""))
        out += ["", f"**Figure {b.number}.** {b.caption}{_tags(b.tags)}", ""]
        return out + _source(b.source)
    if isinstance(b, Columns):
        return [line for col in b.columns for x in col for line in block(x)]
    raise TypeError(f"unknown block {type(b).__name__}")


def section(s: Section, level: int) -> list[str]:
    out = [f'<a id="{s.anchor}"></a>', "", f"{'#' * min(level, 6)} {s.number} {s.title}", ""]
    if s.question:
        out += [f"*{s.question}*", ""]
    for b in s.blocks:
        out += block(b)
    for c in s.children:
        out += section(c, level + 1)
    return out


def render(doc: Document, footer: str = "") -> str:
    out = [f"# {doc.title}", "", doc.subtitle, ""]
    for b in doc.front:
        out += block(b)
    out += ["## Contents", ""]
    for s in doc.sections:
        out.append(f"- [{s.number} {s.title}](#{s.anchor})")
        out += [f"  - [{c.number} {c.title}](#{c.anchor})" for c in s.children]
    out.append("")
    for s in doc.sections:
        out += section(s, 2)
    if footer:
        out += ["---", "", footer, ""]
    return "\n".join(out).rstrip() + "\n"

"""The report as one self-contained HTML page (styles inline, figures under assets/, no script, no
network): readable on screen, printed to PDF by Chromium with one page break before each problem."""
from __future__ import annotations

from html import escape
from typing import Optional

from dlcv.report.doc import (Bullets, Callout, Code, Columns, Document, Figure, Para, Section, Source, Table,
                             inline_spans)
from dlcv.report.provenance import DEMO_TAG, REAL_TAG, source_lines

CSS = """
:root {
  --ink: #1d2430; --muted: #5b6575; --line: #d9dee6; --soft: #f5f7fa; --accent: #1f5fa8;
  --demo: #8a5a00; --demo-bg: #fff4d6; --demo-line: #f0c451; --na: #6b7280; --na-bg: #f3f4f6;
  --real: #17643a; --real-bg: #e3f4ea;
}
* { box-sizing: border-box; }
html { font-size: 15px; }
body {
  margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font-family: "Helvetica Neue", Helvetica, Arial, "Liberation Sans", "DejaVu Sans", sans-serif;
}
main { max-width: 1000px; margin: 0 auto; padding: 28px 36px 60px; }
header.title { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 18px; }
header.title h1 { font-size: 1.9rem; margin: 0 0 4px; letter-spacing: -0.01em; }
header.title p { margin: 0; color: var(--muted); }
h2 { font-size: 1.5rem; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.15rem; margin: 26px 0 6px; }
h4 { font-size: 1rem; margin: 18px 0 4px; }
.num { color: var(--accent); margin-right: .45em; font-variant-numeric: tabular-nums; }
p.question { margin: 0 0 10px; color: var(--muted); font-style: italic; }
p.lead { font-size: 1.05rem; }
p.muted { color: var(--muted); font-size: .92rem; }
code { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: .86em;
       background: var(--soft); border: 1px solid var(--line); border-radius: 3px; padding: 0 .25em;
       overflow-wrap: anywhere; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px;
      white-space: pre-wrap; overflow-wrap: anywhere; font-size: .84rem; }
pre code { border: 0; background: none; padding: 0; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 18px;
          margin: 16px 0 8px; }
nav.toc h2 { font-size: 1.05rem; border: 0; margin: 4px 0; padding: 0; }
nav.toc ol { list-style: none; margin: 0; padding-left: 0; }
nav.toc ol ol { padding-left: 1.6em; }
nav.toc li { margin: 1px 0; }
nav.toc a { color: var(--ink); text-decoration: none; }
nav.toc a:hover { color: var(--accent); text-decoration: underline; }
.callout { border-radius: 6px; padding: 9px 14px; margin: 12px 0; border: 1px solid var(--line);
           break-inside: avoid; }
.callout strong.title { display: block; margin-bottom: 2px; }
.callout p { margin: 0; }
.callout.demo { background: var(--demo-bg); border-color: var(--demo-line); color: #4a3300; }
.callout.banner { border-width: 2px; font-size: 1.02rem; }
.callout.na { background: var(--na-bg); border-style: dashed; border-color: #b8bec8; color: #374151; }
.callout.note { background: #eef4fb; border-color: #c9dbf0; }
.callout.warn { background: #fdecec; border-color: #f2b8b8; }
.tag { display: inline-block; font-size: .72rem; font-weight: 600; letter-spacing: .02em;
       text-transform: uppercase; border-radius: 999px; padding: 1px 8px; margin-left: 6px;
       vertical-align: 1px; border: 1px solid var(--line); color: var(--muted); background: #fff; }
.tag.demo { color: var(--demo); background: var(--demo-bg); border-color: var(--demo-line); }
.tag.real { color: var(--real); background: var(--real-bg); border-color: #9fd3b4; }
.tbl { margin: 14px 0 18px; break-inside: avoid; }
.tbl .wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; font-variant-numeric: tabular-nums; }
table.small { font-size: .8rem; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
thead th { background: #eaf0f7; border-bottom: 2px solid #b9c7d8; font-weight: 600; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.n, th.n { text-align: right; white-space: nowrap; }
caption, .cap { caption-side: top; text-align: left; font-size: .9rem; margin-bottom: 4px; }
.cap b, figcaption b { color: var(--accent); }
figure { margin: 16px 0 20px; break-inside: avoid; }
figure .imgs { display: flex; flex-wrap: wrap; gap: 10px; justify-content: center; align-items: flex-start; }
figure .cell { flex: 1 1 0; min-width: 0; text-align: center; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 3px; background: #fff; }
figure.small .imgs { max-width: 55%; margin: 0 auto; }
figure.normal .imgs { max-width: 75%; margin: 0 auto; }
figure.tall img { max-height: 1000px; width: auto; max-width: 100%; }
.cols { display: flex; gap: 18px; align-items: flex-start; }
.cols .col { min-width: 0; }
.keep { break-inside: avoid; }
td code { white-space: nowrap; }
figure .sub { font-size: .82rem; color: var(--muted); margin-top: 2px; }
figcaption { font-size: .9rem; margin-top: 6px; }
.source { font-size: .76rem; color: var(--muted); margin-top: 4px; line-height: 1.35; }
.source div { margin: 1px 0; }
.source code { font-size: .95em; }
ul.bullets { margin: 6px 0 12px; padding-left: 1.4em; }
ul.bullets li { margin: 3px 0; }
section.problem { margin-top: 12px; }
footer { margin-top: 40px; color: var(--muted); font-size: .8rem; border-top: 1px solid var(--line); padding-top: 8px; }

@page { size: A4; margin: 14mm 13mm 16mm; }
@media print {
  html { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  section.problem { break-before: page; }
  h2, h3, h4, p.question { break-after: avoid; }
  figure, .tbl, .callout, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  figure img { max-height: 120mm; width: auto; }
  figure.tall img { max-height: 225mm; }
  figure .imgs { flex-wrap: nowrap; }
  a { color: inherit; text-decoration: none; }
  .tbl .wrap { overflow: visible; }
  nav.toc { break-inside: avoid; }
}
"""


def text(s: str) -> str:
    """Plain text with **bold** and `code` marks -> escaped HTML."""
    out = []
    for kind, part in inline_spans(s):
        e = escape(part)
        out.append(f"<strong>{e}</strong>" if kind == "bold" else f"<code>{e}</code>" if kind == "code" else e)
    return "".join(out)


def tags(values) -> str:
    cls = {DEMO_TAG: "demo", REAL_TAG: "real"}
    return "".join(f'<span class="tag {cls.get(t, "")}">{escape(t)}</span>' for t in values)


def source(src: Optional[Source]) -> str:
    if src is None or not src.runs:
        return f'<div class="source">{text(src.note)}</div>' if src is not None and src.note else ""
    rows = []
    for line in source_lines(src.runs, src.files):
        files = f" ({escape(', '.join(line['files']))})" if line["files"] else ""
        rows.append(
            f"<div>Source: run <strong>{escape(line['run'])}</strong>{files}, config "
            f"<code>{escape(line['config'])}</code> &middot; <code>{escape(line['command'])}</code> &middot; "
            f"{escape(line['hardware'])} &middot; {escape(line['date'])} &middot; {escape(line['data'])}</div>")
    if src.note:
        rows.append(f"<div>{text(src.note)}</div>")
    return f'<div class="source">{"".join(rows)}</div>'


def table(t: Table) -> str:
    head = "".join(f'<th{" class=n" if i in t.numeric else ""} scope="col">{text(h)}</th>'
                   for i, h in enumerate(t.header))
    body = []
    for row in t.rows:
        cells = "".join(f'<td{" class=n" if i in t.numeric else ""}>{text(str(c))}</td>' for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    cls = ' class="small"' if t.small else ""
    return (f'<div class="tbl" id="table-{t.number}"><div class="cap"><b>Table {t.number}.</b> {text(t.caption)}'
            f'{tags(t.tags)}</div><div class="wrap"><table{cls}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{source(t.source)}</div>')


def figure(f: Figure) -> str:
    cells = []
    for im in f.images:
        sub = f'<div class="sub">{text(im.label)}</div>' if im.label else ""
        cells.append(f'<div class="cell"><img src="{escape(im.path, quote=True)}" alt="{escape(im.alt, quote=True)}" '
                     f'loading="eager">{sub}</div>')
    return (f'<figure class="{escape(f.size)}" id="figure-{f.number}"><div class="imgs">{"".join(cells)}</div>'
            f'<figcaption><b>Figure {f.number}.</b> {text(f.caption)}{tags(f.tags)}</figcaption>'
            f'{source(f.source)}</figure>')


def block(b) -> str:
    if isinstance(b, Para):
        cls = f' class="{escape(b.cls)}"' if b.cls else ""
        return f"<p{cls}>{text(b.text)}</p>"
    if isinstance(b, Bullets):
        return '<ul class="bullets">' + "".join(f"<li>{text(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Callout):
        extra = " banner" if b.kind == "demo" and b.title.isupper() else ""
        body = f"<p>{text(b.text)}</p>" if b.text else ""
        return (f'<div class="callout {escape(b.kind)}{extra}" role="note"><strong class="title">{text(b.title)}'
                f'</strong>{body}</div>')
    if isinstance(b, Code):
        return f"<pre><code>{escape(b.text)}</code></pre>"
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Figure):
        return figure(b)
    if isinstance(b, Columns):
        widths = b.widths or [1] * len(b.columns)
        cols = "".join(f'<div class="col" style="flex: {int(w)} 1 0">{"".join(block(x) for x in col)}</div>'
                       for w, col in zip(widths, b.columns))
        return f'<div class="cols">{cols}</div>'
    raise TypeError(f"unknown block {type(b).__name__}")


def section(s: Section, level: int) -> str:
    tag = f"h{min(level, 4)}"
    question = f'<p class="question">{text(s.question)}</p>' if s.question else ""
    head = f'<{tag}><span class="num">{escape(s.number)}</span>{text(s.title)}</{tag}>{question}'
    blocks = [block(b) for b in s.blocks]
    # a heading never ends a page: it is kept together with its first block
    first = f'<div class="keep">{head}{blocks.pop(0)}</div>' if blocks else head
    inner = first + "".join(blocks) + "".join(section(c, level + 1) for c in s.children)
    cls = ' class="problem"' if s.page_break else ""
    return f'<section id="{escape(s.anchor, quote=True)}"{cls}>{inner}</section>'


def toc(sections) -> str:
    def items(secs, depth):
        if not secs or depth > 2:
            return ""
        lis = "".join(f'<li><a href="#{escape(s.anchor, quote=True)}"><span class="num">{escape(s.number)}</span>'
                      f"{text(s.title)}</a>{items(s.children, depth + 1)}</li>" for s in secs)
        return f"<ol>{lis}</ol>"

    return f'<nav class="toc" aria-label="Contents"><h2>Contents</h2>{items(sections, 1)}</nav>'


def render(doc: Document, footer: str = "") -> str:
    front = "".join(block(b) for b in doc.front)
    body = "".join(section(s, 2) for s in doc.sections)
    foot = f"<footer>{text(footer)}</footer>" if footer else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="dlcv report">\n<title>{escape(doc.title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            f'<header class="title"><h1>{escape(doc.title)}</h1><p>{text(doc.subtitle)}</p></header>\n'
            f"{front}\n{toc(doc.sections)}\n{body}\n{foot}\n</main>\n</body>\n</html>\n")

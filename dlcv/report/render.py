"""The one rendering path: the document is written as GitHub Markdown once (report.md), and the HTML
page (index.html, printed to report.pdf) is that Markdown converted, so the three never disagree.

`to_html` converts exactly the subset `to_markdown` writes (headings, paragraphs, pipe tables,
image rows, block quotes, lists, code fences, <sub> source lines), escaping all text: no raw HTML
ever passes through. Heading ids follow GitHub's rule, so the contents links work in both.
"""
from __future__ import annotations

import re
from html import escape

from dlcv.report import doc
from dlcv.report.provenance import DEMO_TAG, data_tags
from dlcv.runfolder import markdown_table


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _numbered(sections: list[doc.Section], prefix: str = "", level: int = 1):
    """(level, number, section) in reading order: 1, 1.1, 1.2, 2 ..."""
    for i, s in enumerate(sections, 1):
        yield level, f"{prefix}{i}", s
        yield from _numbered(s.children, f"{prefix}{i}.", level + 1)


def _block(b, counts: dict) -> list[str]:
    if isinstance(b, doc.Para):
        return [b.text, ""]
    if isinstance(b, doc.Bullets):
        return [f"- {item}" for item in b.items] + [""]
    if isinstance(b, doc.Callout):
        return [f"> **{b.title}**"] + ([">", f"> {b.text}"] if b.text else []) + [""]
    if isinstance(b, doc.Code):
        return ["```", b.text, "```", ""]
    kind = "Table" if isinstance(b, doc.Table) else "Figure"
    counts[kind] += 1
    tags = "".join(f" `[{t}]`" for t in data_tags(b.runs))
    out = [f"**{kind} {counts[kind]}.** {b.caption}{tags}", ""]
    if isinstance(b, doc.Table):
        out += [markdown_table(b.header, [[str(c) for c in row] for row in b.rows], b.numeric).rstrip("\n"), ""]
    elif isinstance(b, doc.Figure):
        out += [" ".join(f"![{kind} {counts[kind]}]({p})" for p in b.images), ""]
    if b.runs:
        files = f" ({', '.join(b.files)})" if b.files else ""
        out += [f"<sub>Source: {', '.join(f'`{r.name}`' for r in b.runs)}{files}; commands and hardware in "
                f"the appendix.</sub>", ""]
    return out


def to_markdown(document: doc.Document) -> str:
    counts = {"Table": 0, "Figure": 0}
    out = [f"# {document.title}", "", document.subtitle, ""]
    for b in document.front:
        out += _block(b, counts)
    numbered = list(_numbered(document.sections))
    out += ["## Contents", ""]
    out += [f"{'  ' * (lvl - 1)}- [{n} {s.title}](#{slug(f'{n} {s.title}')})" for lvl, n, s in numbered if lvl <= 2]
    out.append("")
    for lvl, n, s in numbered:
        out += [f"{'#' * (lvl + 1)} {n} {s.title}", ""] + ([f"*{s.question}*", ""] if s.question else [])
        for b in s.blocks:
            out += _block(b, counts)
    if document.footer:
        out += ["---", "", document.footer, ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------ Markdown -> HTML
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|(!?)\[([^\]]*)\]\(([^)\s]+)\)|\*([^*\s][^*]*)\*")


def inline(text: str) -> str:
    out, pos = [], 0
    for m in INLINE.finditer(text):
        code, bold, bang, label, href, em = m.groups()
        out.append(escape(text[pos:m.start()]))
        pos = m.end()
        if code is not None and re.fullmatch(r"\[[^\]]+\]", code):  # a data tag, e.g. `[demo data]`
            demo = " demo" if code[1:-1] == DEMO_TAG else ""
            out.append(f'<span class="tag{demo}">{escape(code[1:-1])}</span>')
        elif code is not None:
            out.append(f"<code>{escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline(bold)}</strong>")
        elif bang:
            out.append(f'<img src="{escape(href)}" alt="{escape(label)}">')
        elif href is not None:
            out.append(f'<a href="{escape(href)}">{inline(label)}</a>')
        else:
            out.append(f"<em>{inline(em)}</em>")
    return "".join(out) + escape(text[pos:])


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _table(lines: list[str]) -> str:
    right = [c.endswith(":") for c in _cells(lines[1])]

    def row(line: str, tag: str) -> str:
        return "<tr>" + "".join(f'<{tag}{" class=n" if right[i] else ""}>{inline(c)}</{tag}>'
                                for i, c in enumerate(_cells(line))) + "</tr>"

    body = "".join(row(line, "td") for line in lines[2:])
    return f"<table><thead>{row(lines[0], 'th')}</thead><tbody>{body}</tbody></table>"


def _list(lines: list[str]) -> str:
    out, levels = "", []
    for line in lines:
        level = (len(line) - len(line.lstrip())) // 2
        while levels and levels[-1] > level:
            out += "</li></ul>"
            levels.pop()
        if levels and levels[-1] == level:
            out += "</li>"
        else:
            out += "<ul>"
            levels.append(level)
        out += f"<li>{inline(line.strip()[2:])}"
    return out + "</li></ul>" * len(levels)


def _callout(lines: list[str]) -> str:
    text = [line[1:].strip() for line in lines]
    kind = "na" if "not available" in text[0] else "demo" if "DEMO" in text[0].upper() else "note"
    return f'<div class="callout {kind}">' + "".join(f"<p>{inline(t)}</p>" for t in text if t) + "</div>"


def _html_block(lines: list[str]) -> str:
    first = lines[0]
    if m := re.fullmatch(r"(#{1,6}) (.*)", first):
        level, text = len(m.group(1)), m.group(2)
        cls = ' class="part"' if level == 2 and text[:1].isdigit() else ""
        return f'<h{level} id="{slug(text)}"{cls}>{inline(text)}</h{level}>'
    if first.startswith("|") and len(lines) > 1 and lines[1].startswith("|-"):
        return _table(lines)
    if first.startswith(">"):
        return _callout(lines)
    if first.lstrip().startswith("- "):
        return _list(lines)
    if first == "---":
        return "<hr>"
    text = " ".join(lines)
    if re.fullmatch(r"(!\[[^\]]*\]\([^)\s]+\)\s*)+", text):
        return f'<div class="imgs">{inline(text)}</div>'
    if text.startswith("<sub>") and text.endswith("</sub>"):
        return f'<p class="source">{inline(text[5:-6])}</p>'
    cls = (' class="cap"' if re.match(r"\*\*(Table|Figure) \d+\.\*\*", text) else
           ' class="question"' if re.fullmatch(r"\*[^*].*\*", text) else "")
    return f"<p{cls}>{inline(text)}</p>"


def to_html(md: str, title: str) -> str:
    """The page: the Markdown's blocks (separated by blank lines; code fences kept whole) as HTML."""
    lines, body, i = md.split("\n"), [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
        elif lines[i] == "```":
            end = lines.index("```", i + 1)
            body.append(f"<pre><code>{escape(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
        else:
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            body.append(_html_block(lines[i:j]))
            i = j
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="dlcv report">\n<title>{escape(title)}</title>\n<style>{CSS}</style>\n'
            f"</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


CSS = """
body { margin: 0; color: #1d2430; font: 15px/1.5 Helvetica, Arial, "Liberation Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 36px 60px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; border-bottom: 3px solid #1f5fa8; padding-bottom: 8px; }
h2 { font-size: 1.5rem; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d9dee6; }
h3 { font-size: 1.15rem; margin: 26px 0 6px; }
h2, h3, p.question, p.cap { break-after: avoid; }
p.question { color: #5b6575; margin-top: 0; } p.cap { font-size: .9rem; margin: 14px 0 4px; }
p.cap strong:first-child { color: #1f5fa8; } p.source { font-size: .76rem; color: #5b6575; margin: 4px 0 14px; }
code { font: .86em "DejaVu Sans Mono", monospace; background: #f5f7fa; padding: 0 .25em; overflow-wrap: anywhere; }
pre { background: #f5f7fa; border: 1px solid #d9dee6; padding: 8px 10px; white-space: pre-wrap; font-size: .84rem; }
.callout { border: 1px solid #c9dbf0; background: #eef4fb; border-radius: 6px; padding: 8px 14px; margin: 12px 0;
           break-inside: avoid; } .callout p { margin: 2px 0; }
.callout.demo { background: #fff4d6; border: 2px solid #f0c451; }
.callout.na { background: #f3f4f6; border: 1px dashed #b8bec8; }
.tag { font-size: .72rem; font-weight: 600; text-transform: uppercase; border: 1px solid #d9dee6; border-radius: 9px;
       padding: 1px 8px; color: #5b6575; } .tag.demo { color: #8a5a00; background: #fff4d6; border-color: #f0c451; }
table { border-collapse: collapse; width: 100%; font-size: .86rem; break-inside: avoid; }
th, td { border-bottom: 1px solid #d9dee6; padding: 4px 7px; text-align: left; vertical-align: top; }
thead th { background: #eaf0f7; } td.n, th.n { text-align: right; white-space: nowrap; }
.imgs { display: flex; gap: 10px; justify-content: center; align-items: flex-start; break-inside: avoid; }
.imgs img { min-width: 0; max-width: 100%; height: auto; border: 1px solid #d9dee6; }
#contents + ul { font-size: .85rem; line-height: 1.25; columns: 2; } hr { border: 0; border-top: 1px solid #d9dee6; }
@page { size: A4; margin: 14mm 13mm 16mm; }
@media print { body { font-size: 10.5pt; } main { max-width: none; padding: 0; } h2.part { break-before: page; }
  .imgs img { max-height: 120mm; width: auto; } .imgs img[src*="arch_"] { max-height: 225mm; } }
"""

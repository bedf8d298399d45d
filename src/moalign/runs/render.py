"""The report's content blocks (text, table, figure, code) in sections, rendered twice: HTML with
inline CSS and figures embedded as base64 data URIs (one self-contained file), and Markdown with
figures linked relatively (`report/figures/*.png`). `moalign.runs.report` builds the sections.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Text:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells to highlight


@dataclass
class Figure:
    path: Path
    caption: str
    half: bool = False  # shown two per row in the HTML


@dataclass
class Code:
    text: str


Block = Text | Table | Figure | Code


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    note: str | None = None  # shown instead of the blocks when the artifacts are missing


# ----------------------------------------------------------------------------- rendering

CSS = """
body{font:15px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;margin:0;
background:#f6f7f9}main{max-width:1180px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 10px;padding-bottom:4px;
border-bottom:2px solid #e3e6ea}nav{font-size:13px;margin:6px 0 18px}nav a{margin-right:12px;
color:#3b6fb6;text-decoration:none}table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}
th,td{border:1px solid #dde1e6;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#eef1f5}tr:nth-child(even) td{background:#fafbfc}caption{caption-side:bottom;
text-align:left;color:#666;font-size:12px;padding:4px 0}td.resp{max-width:620px}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #e3e6ea}
figure.half{display:inline-block;width:48%;margin:8px 1% 8px 0;vertical-align:top}
td.best{font-weight:700;background:#eaf4ea!important}figcaption{color:#666;
font-size:12px}.note{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:8px 12px;
border-radius:4px}pre{background:#f4f5f7;padding:12px;overflow:auto;font-size:12px;
max-height:480px}.muted{color:#777;font-size:12px}
"""


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Text):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Code):
        return f"<details open><summary>config.yaml</summary><pre>{esc(block.text)}</pre></details>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return (f'<figure class="{"half" if block.half else ""}"><img alt="{esc(block.caption)}"'
                f' src="data:image/png;base64,{data}"><figcaption>{esc(block.caption)}'
                "</figcaption></figure>")
    head = "".join(f"<th>{esc(h)}</th>" for h in block.headers) if any(block.headers) else ""

    def cell(i: int, j: int, c: str) -> str:
        cls = " ".join(n for n, on in (("resp", len(c) > 60), ("best", (i, j) in block.bold))
                       if on)
        return f'<td class="{cls}">{esc(c)}</td>' if cls else f"<td>{esc(c)}</td>"

    body = "".join("<tr>" + "".join(cell(i, j, c) for j, c in enumerate(row)) + "</tr>"
                   for i, row in enumerate(block.rows))
    cap = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
    return f"<table>{cap}{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def render_html(title: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title.split(" (")[0])}</a>'
                  for s in sections)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{CSS}</style></head><body><main><h1>{html.escape(title)}</h1>"
             f"<div class='muted'>moalign report, built from the run's artifacts only</div>"
             f"<nav>{nav}</nav>"]
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.note:
            parts.append(f'<p class="note">Not available: {html.escape(s.note)}</p>')
        parts.extend(_html_block(b) for b in s.blocks)
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, out_dir: Path) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Code):
        return f"```yaml\n{block.text.rstrip()}\n```"
    if isinstance(block, Figure):
        rel = block.path.relative_to(out_dir).as_posix()
        return f"![{block.caption}]({rel})\n\n*{block.caption}*"
    headers = [h or " " for h in block.headers]
    lines = ["| " + " | ".join(map(_md_cell, headers)) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(f"**{_md_cell(c)}**" if (i, j) in block.bold else _md_cell(c)
                                for j, c in enumerate(row)) + " |"
              for i, row in enumerate(block.rows)]
    if block.caption:
        lines.append(f"\n*{_md_cell(block.caption)}*")
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], out_dir: Path) -> str:
    parts = [f"# {title}", "", "*moalign report, built from the run's artifacts only*", ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        if s.note:
            parts += [f"> Not available: {s.note}", ""]
        for b in s.blocks:
            parts += [_md_block(b, out_dir), ""]
    return "\n".join(parts)

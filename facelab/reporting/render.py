"""Rendering of the report's document model: blocks in, an offline HTML page or pull-request Markdown out.

A document is a list of blocks: ("heading", level, text, anchor) | ("text", str) | ("list", [str])
| ("table", header, rows) | ("image", src, alt) | ("banner", str) | ("links", [(href, text)])
| ("fold", summary, [blocks]): a section that starts folded. Every text is plain; the renderers escape it."""
from __future__ import annotations

import html
from collections.abc import Callable

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 12px}img{max-width:100%}"
         "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px}"
         ".banner{background:#fff3cd;border:1px solid #e0a800;padding:8px 12px;font-weight:bold}"
         "details{border:1px solid #ddd;margin:8px 0;padding:4px 10px}summary{cursor:pointer;font-weight:bold}")


def cells(tag: str, values: list[str]) -> str:
    return "".join(f"<{tag}>{html.escape(v)}</{tag}>" for v in values)


def markdown_row(values: list[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def html_links(links: list[tuple[str, str]]) -> str:
    items = "".join(f"<li><a href='{html.escape(href)}'>{html.escape(text)}</a></li>" for href, text in links)
    return f"<ul>{items}</ul>"


# each block kind's renderer, called with the block's fields after its kind
HTML: dict[str, Callable[..., str]] = {
    "heading": lambda level, text, anchor: f"<h{level} id='{html.escape(anchor)}'>{html.escape(text)}</h{level}>",
    "text": lambda text: f"<p>{html.escape(text)}</p>",
    "list": lambda items: f"<ul>{cells('li', items)}</ul>",
    "table": lambda header, rows: (f"<table><tr>{cells('th', header)}</tr>"
                                   + "".join(f"<tr>{cells('td', row)}</tr>" for row in rows) + "</table>"),
    "image": lambda src, alt: f"<img src='{html.escape(src)}' alt='{html.escape(alt)}'>",
    "banner": lambda text: f"<p class='banner'>{html.escape(text)}</p>",
    "links": html_links,
    "fold": lambda summary, blocks: (f"<details><summary>{html.escape(summary)}</summary>\n"
                                     f"{render_html_blocks(blocks)}\n</details>"),
}
MARKDOWN: dict[str, Callable[..., str]] = {
    "heading": lambda level, text, anchor: f"{'#' * level} {text}",
    "text": lambda text: text,
    "list": lambda items: "\n".join(f"- {item}" for item in items),
    "table": lambda header, rows: "\n".join([markdown_row(header), markdown_row(["---"] * len(header)),
                                             *map(markdown_row, rows)]),
    "image": lambda src, alt: f"![{alt}]({src})",
    "banner": lambda text: f"> **Warning:** {text}",
    "links": lambda links: "\n".join(f"- [{text}]({href})" for href, text in links),
    # GitHub renders <details> in Markdown; the blank lines let the Markdown inside it render too
    "fold": lambda summary, blocks: (f"<details><summary>{html.escape(summary)}</summary>\n\n"
                                     f"{render_markdown_blocks(blocks)}\n\n</details>"),
}


def render_html_blocks(blocks: list[tuple]) -> str:
    return "\n".join(HTML[kind](*args) for kind, *args in blocks)


def render_markdown_blocks(blocks: list[tuple]) -> str:
    return "\n\n".join(MARKDOWN[kind](*args) for kind, *args in blocks)


def render_html(blocks: list[tuple]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>facelab report</title>"
            f"<style>{STYLE}</style></head><body>\n{render_html_blocks(blocks)}\n</body></html>\n")


def render_markdown(blocks: list[tuple]) -> str:
    return render_markdown_blocks(blocks) + "\n"

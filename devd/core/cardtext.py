"""A card as plain text: its headings, tables and values, for a reader that cannot see HTML.

Metaflow's cards carry their content as base64 JSON components
(``window.__MF_DATA__[id] = "..."``) that JavaScript turns into a page, so the HTML text
alone is empty: the components are read instead. A card without them (a custom card
writing its own HTML) is read as HTML with scripts and styles left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from html.parser import HTMLParser
from typing import Any

_DATA = re.compile(r"""__MF_DATA__\[["'][^"']*["']\]\s*=\s*["']([A-Za-z0-9+/=\s]+)["']""")
MAX_CELL = 80
MAX_ROWS = 20
MAX_CODE_LINES = 12


def card_components(html: str) -> list[dict[str, Any]] | None:
    """The component tree a Metaflow card's page embeds, or None when it holds none."""
    match = _DATA.search(html)
    if match is None:
        return None
    try:
        data = json.loads(base64.b64decode(match.group(1)))
    except (binascii.Error, ValueError):
        return None
    components = data.get("components") if isinstance(data, dict) else None
    return components if isinstance(components, list) else None


def card_text(html: str, limit: int = 8000) -> str:
    """The card's content as indented lines of text, at most ``limit`` characters."""
    components = card_components(html)
    lines: list[str] = []
    if components is not None:
        for component in components:
            _component(component, lines, 0)
    else:
        lines = _html_text(html)
    text = "\n".join(line.rstrip() for line in lines if line.strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _cell(value: Any) -> str:
    if isinstance(value, dict):  # a component inside a table cell
        inner: list[str] = []
        _component(value, inner, 0)
        text = " ".join(line.strip() for line in inner)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _component(c: Any, out: list[str], depth: int) -> None:  # one case per component type
    pad = "  " * depth
    if isinstance(c, str):
        out.append(pad + c)
        return
    if isinstance(c, list):
        for item in c:
            _component(item, out, depth)
        return
    if not isinstance(c, dict):
        return
    kind = c.get("type")
    title = c.get("title")
    if kind in ("page", "section"):
        if title:
            out.append(f"{pad}{'#' if kind == 'page' else '##'} {title}")
        for item in c.get("contents") or []:
            _component(item, out, depth + (1 if title else 0))
    elif kind in ("title", "subtitle", "heading", "text"):
        out.append(pad + str(c.get("text", "")))
    elif kind == "markdown":
        out.extend(pad + line for line in str(c.get("source", "")).splitlines())
    elif kind == "table":
        _table(c, out, pad)
    elif kind == "artifacts":
        for row in c.get("data") or []:
            if isinstance(row, dict):
                out.append(f"{pad}{row.get('name')} ({row.get('type')}): {_cell(row.get('data'))}")
    elif kind == "image":
        out.append(f"{pad}[image{': ' + str(c['label']) if c.get('label') else ''}]")
    elif kind == "progressBar":
        label = c.get("label") or "progress"
        out.append(f"{pad}{label}: {c.get('value')}/{c.get('max')}"
                   + (f" {c['details']}" if c.get("details") else ""))
    elif kind == "valueBox":
        out.append(f"{pad}{title or 'value'}: {c.get('value')}"
                   + (f" ({c['subtitle']})" if c.get("subtitle") else ""))
    elif kind == "pythonCode":
        code = str(c.get("data", "")).splitlines()
        out.extend(pad + line for line in code[:MAX_CODE_LINES])
        if len(code) > MAX_CODE_LINES:
            out.append(f"{pad}… {len(code) - MAX_CODE_LINES} more lines")
    elif kind == "dag":
        steps = (c.get("data") or {}).get("steps") or {}
        edges = [f"{name} -> {', '.join(info.get('next') or [])}"
                 for name, info in steps.items() if isinstance(info, dict) and info.get("next")]
        out.append(pad + "DAG: " + "; ".join(edges))
    elif kind == "log":
        out.extend(pad + line for line in str(c.get("data", "")).splitlines()[-MAX_ROWS:])
    elif kind in ("vegaChart", "plotlyChart"):
        spec = c.get("spec") or c.get("data") or {}
        name = spec.get("title") if isinstance(spec, dict) else None
        out.append(f"{pad}[chart{': ' + _cell(name) if name else ''}]")
    else:  # a component this does not know: its text-like fields and children
        for key in ("title", "label", "text", "value"):
            if isinstance(c.get(key), str | int | float) and c.get(key) != "":
                out.append(f"{pad}{c[key]}")
        for key in ("contents", "children", "components"):
            if isinstance(c.get(key), list):
                _component(c[key], out, depth + 1)


def _table(c: dict[str, Any], out: list[str], pad: str) -> None:
    if not c.get("columns") and all(isinstance(row, list) and len(row) == 1
                                     and isinstance(row[0], dict) for row in c.get("data") or []):
        for row in c.get("data") or []:  # a layout table holding components: show them
            _component(row[0], out, len(pad) // 2)
        return
    columns = [_cell(col) for col in c.get("columns") or []]
    rows = [[_cell(v) for v in row] if isinstance(row, list) else [_cell(row)]
            for row in c.get("data") or []]
    if c.get("vertical") and columns:  # one record shown as name: value lines
        for row in rows:
            for name, value in zip(columns, row, strict=False):
                out.append(f"{pad}{name}: {value}")
        return
    if columns:
        out.append(pad + " | ".join(columns))
    for row in rows[:MAX_ROWS]:
        out.append(pad + " | ".join(row))
    if len(rows) > MAX_ROWS:
        out.append(f"{pad}… {len(rows) - MAX_ROWS} more rows")


class _TextParser(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6",
                        "table", "section", "article", "header", "footer", "pre", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__()
        self.skipping = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        if tag in ("h1", "h2", "h3") and not self.skipping:
            self.parts.append("#" * int(tag[1]) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html_text(html: str) -> list[str]:
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return [line[2:] if line.startswith("| ") else line for line in lines]

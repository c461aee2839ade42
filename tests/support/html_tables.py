"""The tables of a report page, read back as text (the HTML and inference report tests)."""

from __future__ import annotations

from html.parser import HTMLParser


class Tables(HTMLParser):
    """Every table's caption, header cells and body rows, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self._where = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"caption": "", "head": [], "rows": []})
        elif tag in ("th", "td", "caption"):
            self._cell, self._where = [], tag
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td", "caption") and self._cell is not None:
            text = "".join(self._cell)
            if tag == "caption":
                self.tables[-1]["caption"] = text
            else:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self.tables:
            key = "head" if self._where == "th" else "rows"
            if key == "head":
                self.tables[-1]["head"] = self._row
            else:
                self.tables[-1]["rows"].append(self._row)

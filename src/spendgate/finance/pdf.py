"""A finance document (``finance/document.py``) drawn as a printable A4 PDF with fpdf2 (pure
Python: no browser, no system fonts). ``document_pdf(document) -> bytes`` is the whole API.

Every page carries the document's title and ledger id at the top and its page number at the
bottom; tables break across pages with their header row repeated, and long cells wrap (and
are cut at MAX_CELL_CHARS). fpdf2 ships no Unicode font and a user's machine may have none we
can count on, so text is drawn in the PDF core font Helvetica, which covers Latin-1 only:
``latin1_text`` maps everything else to a safe look-alike or "?" (the JSON and CSV carry the
exact names)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout

from spendgate.finance.document import Document, Figures, Heading, Paragraph, Table

MAX_CELL_CHARS = 160  # a 300-character name would make one row a page tall
_FONT = "helvetica"
_MARGIN_MM = 15
_TABLE_PT = 8.5
_GREY = (90, 90, 90)
_LOOK_ALIKES = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "•": "*",
        "€": "EUR",
        "−": "-",
    }
)


def latin1_text(text: str) -> str:
    """``text`` drawable by a core font: punctuation mapped to a Latin-1 look-alike, accents
    kept where Latin-1 has the letter (or dropped: "ő" -> "o"), control and bidi formatting
    characters and combining marks removed (they would reorder or hide text), anything else
    (emoji, Hebrew, CJK) "?"."""
    out = []
    for ch in text.translate(_LOOK_ALIKES):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or (unicodedata.combining(ch) and ch > "\xff"):
            continue  # a mark on a letter already replaced by "?" adds nothing
        if ch <= "\xff":
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if c <= "\xff" and not unicodedata.combining(c))
        out.append(base or "?")
    return "".join(out)


def _cell_text(text: str) -> str:
    text = latin1_text(text)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` cut (marked "...") to what the current font draws within ``width``: for one-line
    cells, which do not wrap."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


class _Pages(FPDF):
    """A4 pages with the running header and page numbers."""

    def __init__(self, running_header: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._running_header = latin1_text(running_header)
        self.set_margins(_MARGIN_MM, _MARGIN_MM + 3, _MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=_MARGIN_MM)

    def header(self) -> None:
        self.set_font(_FONT, size=8)
        self.set_text_color(*_GREY)
        self.set_xy(_MARGIN_MM, 8)
        self.cell(self.epw, 5, _fit(self, self._running_header, self.epw))
        self.set_text_color(0)
        self.set_y(_MARGIN_MM + 3)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(_FONT, size=8)
        self.set_text_color(*_GREY)
        self.cell(self.epw, 5, f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def month_close(month: str) -> datetime:
    """The first instant after a ``YYYY-MM`` month (UTC)."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)


def document_pdf(document: Document) -> bytes:
    pdf = _Pages(document.running_header)
    pdf.set_title(latin1_text(document.title))
    pdf.set_creator("spendgate")
    # Dated by its month, not by the clock: the same ledger gives the same bytes (a delivered
    # file equals `finance report --format pdf`, and a rerun is recognisably the same document).
    pdf.set_creation_date(month_close(document.month))
    pdf.add_page()
    pdf.set_font(_FONT, "B", 16)
    pdf.multi_cell(pdf.epw, 8, latin1_text(document.title), new_x="LMARGIN", new_y="NEXT")
    if document.ledger_id:
        _paragraph(pdf, Paragraph(f"Ledger {document.ledger_id}", note=True))
    for block in document.blocks:
        if isinstance(block, Heading):
            _heading(pdf, block)
        elif isinstance(block, Paragraph):
            _paragraph(pdf, block)
        elif isinstance(block, Figures):
            _figures(pdf, block)
        else:
            _table(pdf, block)
    return bytes(pdf.output())


def _heading(pdf: FPDF, heading: Heading) -> None:
    size = 13 if heading.level <= 2 else 11
    # Keep a heading with the start of what follows it: a new page when little room is left.
    if pdf.get_y() > pdf.h - _MARGIN_MM - 30:
        pdf.add_page()
    pdf.ln(3 if heading.level <= 2 else 1)
    pdf.set_font(_FONT, "B", size)
    pdf.multi_cell(pdf.epw, size * 0.5, latin1_text(heading.text), new_x="LMARGIN", new_y="NEXT")
    if heading.level <= 2:
        pdf.set_draw_color(190)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
    pdf.ln(1.5)


def _paragraph(pdf: FPDF, paragraph: Paragraph) -> None:
    pdf.set_font(_FONT, size=8 if paragraph.note else 10)
    if paragraph.note:
        pdf.set_text_color(*_GREY)
    pdf.multi_cell(pdf.epw, 4.5, latin1_text(paragraph.text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.ln(1.5)


def _figures(pdf: FPDF, figures: Figures) -> None:
    pdf.set_font(_FONT, size=10)
    with pdf.table(
        col_widths=(1, 2),
        first_row_as_headings=False,
        borders_layout=TableBordersLayout.NONE,
        text_align=("LEFT", "LEFT"),
        line_height=5,
    ) as table:
        for label, value in figures.items:
            row = table.row()
            row.cell(_cell_text(label))
            row.cell(_cell_text(value), style=FontFace(emphasis="BOLD"))
    pdf.ln(2)


def _table(pdf: FPDF, table: Table) -> None:
    pdf.set_font(_FONT, size=_TABLE_PT)
    columns = range(len(table.headers))
    align = tuple("RIGHT" if c in table.numeric else "LEFT" for c in columns)
    with pdf.table(
        col_widths=tuple(1 if c in table.numeric else 2 for c in columns),
        text_align=align,
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="BOLD", fill_color=(240, 240, 240)),
        line_height=4.2,
        repeat_headings=1,
    ) as drawn:
        drawn.row([latin1_text(h) for h in table.headers])
        for row in table.rows:
            drawn.row([_cell_text(text) for text in row])
        if table.total is not None:
            drawn.row([_cell_text(text) for text in table.total], style=FontFace(emphasis="BOLD"))
    pdf.ln(2)

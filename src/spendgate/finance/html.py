"""A finance document (``finance/document.py``) as one self-contained, printable HTML page: no
scripts, fonts or links; A4 print styles (pure)."""

from __future__ import annotations

from html import escape

from spendgate.finance.document import Block, Document, Figures, Heading, Paragraph, Table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1a1a1a;margin:2rem auto;max-width:60rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:1.8rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.92rem} th,td{padding:.3rem .5rem;border-bottom:1px solid #eee}
th{text-align:left;background:#f5f5f5} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #999} .kpis{display:flex;gap:1rem;flex-wrap:wrap}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:10rem} .kpi b{display:block;font-size:1.3rem}
.note{color:#555;font-size:.85rem} .over{color:#b00020} td{overflow-wrap:anywhere}
@media print{body{margin:0;max-width:none} h2{break-after:avoid} table{break-inside:auto} tr{break-inside:avoid}}
@page{size:A4;margin:1.5cm}
"""


def document_html(document: Document) -> str:
    ledger = f"<p class='note'>Ledger {escape(document.ledger_id)}</p>" if document.ledger_id else ""
    body = "".join(_block(block) for block in document.blocks)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(document.title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{escape(document.title)}</h1>{ledger}{body}</body></html>\n"
    )


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p class='note'>{escape(block.text)}</p>" if block.note else f"<p>{escape(block.text)}</p>"
    if isinstance(block, Figures):
        items = "".join(f"<div class='kpi'>{escape(label)}<b>{escape(value)}</b></div>" for label, value in block.items)
        return f"<div class='kpis'>{items}</div>"
    return _table(block)


def _table(table: Table) -> str:
    def cell(tag: str, column: int, text: str) -> str:
        kind = ' class="n"' if column in table.numeric else ""
        return f"<{tag}{kind}>{escape(text)}</{tag}>"

    head = "".join(
        f'<th class="{"n" if i in table.numeric else ""}">{escape(h)}</th>' for i, h in enumerate(table.headers)
    )
    rows = ["<tr>" + "".join(cell("td", c, text) for c, text in enumerate(row)) + "</tr>" for row in table.rows]
    if table.total is not None:
        cells = [f"<td>{escape(table.total[0])}</td>"]
        cells += [cell("td", c, text) if c in table.numeric else "<td></td>" for c, text in enumerate(table.total) if c]
        rows.append(f'<tr class="total">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

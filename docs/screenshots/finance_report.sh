#!/usr/bin/env bash
# Makes the README's pictures of the finance report: finance-report.png (the HTML page, by
# headless chromium) and finance-report-pdf.png (page 1 of the PDF, by pypdfium2), from the
# offline demo's month plus a budget, another cost, an allocation rule, references, an anomaly
# and an approved extra. Needs: chromium (apt-get install chromium), pip install pypdfium2.
#   bash docs/screenshots/finance_report.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
db="sqlite:///$work/demo.db"
python -m spendgate demo --no-serve --db "$db" >/dev/null
python -m spendgate budgets create --scope team:support --limit 2.5 --name support-m --db "$db" >/dev/null
python -m spendgate budgets create --scope team:payments --limit 1 --name payments-m --on-exhausted approve \
  --db "$db" >/dev/null
python -m spendgate costs add --amount 1.50 --team growth --period 2026-11 --category compute --db "$db" >/dev/null
python -m spendgate allocations create --name shared --from unallocated --method proportional --db "$db" >/dev/null
python -m spendgate teams update payments --reference PO-2026-114 --db "$db" >/dev/null
python - "$db" <<'PY'
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.record import Anomaly, Driver
from spendgate.ledger.store import open_store

store = open_store(sys.argv[1])
start = datetime(2026, 11, 18, 14, tzinfo=UTC)
driver = Driver("model", "gpt-4o", Decimal("1.1742"), Decimal("0.08"))
spike = Anomaly("team:support", start, start + timedelta(hours=2), Decimal("1.31257"), Decimal("0.1402"),
                Decimal("11.42"), (driver,))
store.record_anomaly(spike, merge_gap=timedelta(0), source="scan", now=spike.end, alert_id=new_alert_id(spike.end))
approval = store.request_approval("payments-m", "2026-11", "team:payments", datetime(2026, 11, 26, 9, tzinfo=UTC))
store.decide_approval(approval["id"], "approved", datetime(2026, 11, 26, 10, 5, tzinfo=UTC), extra=Decimal("0.5"),
                      reason="checkout launch load test", decided_by="dana@example.com")
store.close()
PY
python -m spendgate finance report --month 2026-11 --format html --out "$work/report.html" --db "$db"
python -m spendgate finance report --month 2026-11 --format pdf --out "$work/report.pdf" --db "$db"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1500 \
  --screenshot="$here/finance-report.png" "file://$work/report.html" 2>/dev/null
python - "$work/report.pdf" "$here/finance-report-pdf.png" <<'PY'
import sys

import pypdfium2

page = pypdfium2.PdfDocument(sys.argv[1])[0]
page.render(scale=1.5).to_pil().save(sys.argv[2])
PY
rm -rf "$work"

"""The one store: every statement written once, over a dialect (``dialects/``).

Built from one part per area, each a module of its own: teams, projects and keys
(``teams.py``), the raw ledger and retention (``events.py``), reports (``reports.py``),
budgets, limits, policies and spend (``budgets.py``), webhooks and alerts (``alerts.py``),
users, roles, sessions and personal tokens (``users.py``), provider batches and their creators
(``batches.py``), anomalies, their rules and suspensions (``anomalies.py``), budget approvals
(``approvals.py``), jobs one replica runs (``jobs.py``), shared-cost allocation rules
(``allocations.py``), the FOCUS export's query (``focus.py``), customers' names and
references (``customers.py``).
A new area adds a part here and its tables as one migration (``migrations/``).
"""

from __future__ import annotations

import spendgate.ledger.store.migrate as migrations
from spendgate.ledger.errors import StoreError
from spendgate.ledger.rollups.maintain import RollupWriter
from spendgate.ledger.store.alerts import AlertsMixin
from spendgate.ledger.store.allocations import AllocationsMixin
from spendgate.ledger.store.anomalies import AnomaliesMixin
from spendgate.ledger.store.approvals import ApprovalsMixin
from spendgate.ledger.store.batches import BatchesMixin
from spendgate.ledger.store.budgets import BudgetsMixin
from spendgate.ledger.store.customers import CustomersMixin
from spendgate.ledger.store.dialect import Dialect
from spendgate.ledger.store.events import EventsMixin
from spendgate.ledger.store.finance_deliveries import FinanceDeliveriesMixin
from spendgate.ledger.store.focus import FocusMixin
from spendgate.ledger.store.jobs import JobsMixin
from spendgate.ledger.store.output_samples import OutputSamplesMixin
from spendgate.ledger.store.reports import ReportsMixin
from spendgate.ledger.store.teams import TeamsMixin
from spendgate.ledger.store.users import UsersMixin


class SQLStore(
    TeamsMixin,
    EventsMixin,
    ReportsMixin,
    BudgetsMixin,
    OutputSamplesMixin,  # recent output tokens, for learned reservations (output_samples.py)
    AlertsMixin,
    UsersMixin,
    BatchesMixin,
    AnomaliesMixin,
    ApprovalsMixin,
    JobsMixin,
    FinanceDeliveriesMixin,
    AllocationsMixin,
    FocusMixin,
    CustomersMixin,
):
    """Opening one applies pending migrations (``auto_migrate=False``: refuses a database
    that has some, for deployments that run ``spendgate migrate`` on their own)."""

    def __init__(self, dialect: Dialect, *, auto_migrate: bool = True) -> None:
        self._dialect = dialect
        self._rollups = RollupWriter(dialect)
        try:
            applied: list[str] = []
            with dialect.setup_session() as session:
                if auto_migrate:
                    applied = migrations.migrate(session, dialect)
                elif migrations.pending(session, dialect):
                    raise StoreError("the database schema is not up to date; run `spendgate migrate --db URL` first")
            dialect.open()
            if applied:
                self.ledger_id()  # a new database gets its identity as it is created
        except BaseException:
            dialect.close()
            raise

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def is_data_error(self, exc: BaseException) -> bool:
        """True when a write failed for what it held (see ``Dialect.data_errors``)."""
        return isinstance(exc, self._dialect.data_errors)

    def migrate(self) -> list[str]:
        """Apply pending schema migrations; the versions applied (none when up to date)."""
        with self._dialect.session() as session:
            applied = migrations.migrate(session, self._dialect)
        if applied:
            self.ledger_id()
        return applied

    def schema_versions(self) -> list[str]:
        with self._dialect.session() as session:
            return sorted(migrations.applied(session, self._dialect))

    def close(self) -> None:
        self._dialect.close()

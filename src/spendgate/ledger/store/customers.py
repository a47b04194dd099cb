"""Customers: a customer is a dimension value on events (its id, from ``x-spendgate-customer``);
this table gives an id a display name and a billing reference for customer statements. An id
need not have spend yet (set it up before the first invoice), and spend needs no row here."""

from __future__ import annotations

from dataclasses import dataclass

from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row
from spendgate.ledger.store.visibility import among


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str | None = None
    reference: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"id": self.id, "name": self.name, "reference": self.reference}


_KEEP = object()  # set_customer: leave this field as it is


class CustomersMixin(StoreBase):
    def set_customer(self, customer_id: str, *, name: object = _KEEP, reference: object = _KEEP) -> Customer:
        """Create or update a customer's name and reference; a field not given keeps its value
        (None clears it). One statement, so two admins setting different fields both win."""
        now = self._now()
        fields = {k: v for k, v in (("name", name), ("reference", reference)) if v is not _KEEP}
        update = ", ".join(f"{k} = excluded.{k}" for k in fields)
        insert = (
            "INSERT INTO customers (id, name, reference, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
            f" ON CONFLICT (id) DO UPDATE SET {update + ', ' if update else ''}updated_at = excluded.updated_at"
        )
        # Not gateway configuration (no config version bump): only statements read it.
        with self._dialect.transaction() as session:
            session.execute(insert, (customer_id, fields.get("name"), fields.get("reference"), now, now))
        return self.customers([customer_id])[customer_id]

    def customers(self, ids: list[str] | None = None) -> dict[str, Customer]:
        """Every customer by id, or only those of ``ids``."""
        where, params = ("", []) if ids is None else among("id", ids)
        condition = f" WHERE {where}" if where else ""
        rows = self._query(f"SELECT id, name, reference FROM customers{condition} ORDER BY id", params)
        return {r["id"]: _customer(r) for r in rows}


def _customer(row: Row) -> Customer:
    return Customer(row["id"], row["name"], row["reference"])

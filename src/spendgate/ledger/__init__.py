"""The ledger: usage events, where they are stored, and what is summed from them.

- ``events.py``: the usage event (one row of the append-only ledger).
- ``store/``: the storage interface the rest of spendgate sees (``store/__init__.py``) and its
  one implementation, written once over a small dialect per database (``store/dialects/``),
  with the schema migrations of both databases (``store/migrations/``).
- ``rollups/``: what the ledger keeps pre-summed by hour and day (``plan.py``, pure) and how
  each batch of events is added to it (``maintain.py``).
- ``spool/``: events on their way to the store: the local spool, the batch writer, start-up
  recovery.
- ``retention.py``: the periodic deletion of old raw events (rollups are kept).
"""

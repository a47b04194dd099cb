"""Events on their way to the ledger: the local spool every request's usage is written to
first (``spool.py``), the writer that ships it to the store in batches (``writer.py``), and
the start-up recovery of what a dead process left behind (``recovery.py``)."""

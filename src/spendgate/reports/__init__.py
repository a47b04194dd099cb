"""Reports over the ledger: what to group by, and how to print it."""

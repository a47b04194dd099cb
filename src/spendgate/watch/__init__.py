"""The anomaly detector's I/O edge: reading the ledger for ``anomalies`` (pure), and writing
what it finds. ``scopes`` says which scopes are watched and which an event counts in,
``history`` runs the detector over the rollups (``spendgate anomalies scan``), ``live`` is
``serve``'s periodic check.
"""

"""Spend anomalies, pure: a scope's seasonal baseline (``baseline``), the live and
historical detector (``detector``, ``scan``), what drove an anomaly (``drivers``) and the
anomaly record with its status transitions (``record``). Every parameter and why it has
its default is in ``params``; ``synthetic`` makes deterministic test histories.

No clock, no database, no HTTP: callers pass ``now`` and the costs. Kept free of imports
so loading one module does not load the others.
"""

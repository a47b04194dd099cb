"""The ``spendgate`` command line: thin commands over the same services the gateway and the
admin API use. ``main.py`` holds the command group and the small commands; each area with
several commands has its module (``budgets.py``, ``webhooks.py``, ``ledger.py``…), and
``support.py`` the options and output helpers they share."""

from spendgate.cli.main import main

__all__ = ["main"]

"""The one error the storage layer raises on purpose (everything else is a bug or an outage)."""

from __future__ import annotations


class StoreError(ValueError):
    """A request the store cannot do (duplicate name, unknown team, a database it cannot
    open or migrate…), with a message meant for the person who asked."""

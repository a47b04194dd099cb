"""The schema migrations of both databases, applied in order by ``store/migrate.py``.

A migration is ONE file, ``NNNN_name.sql`` or ``NNNN_name.py``, numbered after the last:

- ``.sql``: statements both databases accept, with ``{type}`` where the column types differ:
  ``{money}`` (exact decimal), ``{timestamp}`` (an instant), ``{json}``, ``{bool}``,
  ``{bigint}``, ``{integer}``, ``{float}``, ``{text}``, and ``{id}`` (an auto-numbered primary
  key). No transaction control: each file runs in a transaction of its own.
- ``.py``: ``def upgrade(session, dialect)``, for a step SQL cannot say (``session.execute``,
  ``session.script``; ``dialect.name`` is ``"sqlite"`` or ``"postgresql"``).

``NNNN_name.sqlite.sql`` / ``NNNN_name.postgresql.sql`` pairs are for a step that cannot be
written once. 0001–0003 are such pairs only because they were written before the two stores
were one; they are kept as they were. A shipped file is never edited: a change is a new file.
"""

"""Versioned schema migrations, one folder per backend that needs them (PostgreSQL).

Files are ``NNNN_name.sql``, applied in order of NNNN, each in its own transaction; they
are package data, read with ``importlib.resources`` so an installed wheel finds them.
A file holds plain SQL statements without transaction control (each file already runs in
a transaction of its own); a shipped file is never edited, a change is a new file.
"""

"""One small module per database: what differs (``store/dialect.py`` lists it), and the
store's name on that database (``SQLiteStore``, ``PostgresStore``: constructors choosing the
dialect, nothing else)."""

"""Budget alerts: decided by pure rules (``rules``), stored once per budget period by the
storage backend, noted by the gateway through ``center.AlertCenter`` and delivered to
webhooks by ``dispatcher.AlertDispatcher``.

Kept free of imports so loading the storage layer does not pull in the HTTP client.
"""

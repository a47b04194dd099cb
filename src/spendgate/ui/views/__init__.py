"""The dashboard's pages, one module each (listed in ``ui/registry.py``)."""

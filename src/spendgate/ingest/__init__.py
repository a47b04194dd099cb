"""Spend from outside the proxy: the usage API (POST /v1/usage), files (`spendgate ingest`),
OpenTelemetry traces (POST /v1/traces) and other costs (`spendgate costs add`).

Every door turns what it reads into the same ``UsageEvent`` (records.py), priced by the same
price book and attributed by the same rules as a proxied request, and stores it through the
same writer; pure parsing here, I/O at the edges (gateway/ingest_api.py, gateway/otlp_api.py,
cli/ingest.py, cli/costs.py).
"""

"""The ASGI gateway: provider-shaped endpoints, upstream relay, admin API."""

from spendgate.gateway.app import SpendgateApp, create_app

__all__ = ["SpendgateApp", "create_app"]

"""spendgate's tagging SDK: attribution set once at a request boundary, carried by every
``openai`` / ``anthropic`` call made inside it. Needs none of the gateway's dependencies.

    from spendgate.sdk import attribution, openai_client

    client = openai_client()  # SPENDGATE_URL, SPENDGATE_API_KEY; or instrument(your_client)
    with attribution(feature="refunds", customer="acme", tags={"agent": "support-bot"}):
        client.chat.completions.create(...)
"""

from spendgate.sdk.clients import (
    anthropic_client,
    async_anthropic_client,
    async_openai_client,
    gateway_url,
    instrument,
    instrument_http_client,
    openai_client,
)
from spendgate.sdk.context import attribution, bind, current, headers

__all__ = [
    "anthropic_client",
    "async_anthropic_client",
    "async_openai_client",
    "attribution",
    "bind",
    "current",
    "gateway_url",
    "headers",
    "instrument",
    "instrument_http_client",
    "openai_client",
]

"""Clients of the providers' admin usage and cost reports, returning normalized rows.

=========  =====================================================  ==============================
provider   usage                                                  cost
=========  =====================================================  ==============================
openai     ``GET {base}/organization/usage/{completions,          ``GET {base}/organization/costs``
           embeddings}``                                          (``amount.value``, USD)
anthropic  ``GET {base}/v1/organizations/usage_report/messages``  ``GET {base}/v1/organizations/
                                                                  cost_report`` (cents as strings)
=========  =====================================================  ==============================

``{base}`` is the provider base URL the gateway uses (``SPENDGATE_OPENAI_BASE_URL``, ``/v1``
included, and ``SPENDGATE_ANTHROPIC_BASE_URL``); the admin key comes from ``OPENAI_ADMIN_KEY`` /
``ANTHROPIC_ADMIN_KEY``, read by the caller from its environment and passed in.

Plain HTTP rather than the SDKs: the installed ``openai`` SDK has
``client.admin.organization.usage.{completions,embeddings,costs}``, but each call returns one page
(no paginator) and types ``amount.value`` as a float, which loses the exactness money needs; the
``anthropic`` SDK has no method for these two endpoints (only the Enterprise analytics reports
under ``/v1/organizations/analytics/``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import aiohttp

from spendgate.providers.admin import anthropic as anthropic_admin
from spendgate.providers.admin import openai as openai_admin
from spendgate.providers.admin.anthropic import AnthropicAdminClient
from spendgate.providers.admin.http import AdminHttp, RetryPolicy, Sleep
from spendgate.providers.admin.model import (
    AdminApiError,
    AdminKeyError,
    AdminResponseError,
    Fetched,
    ProviderCostRow,
    ProviderUsageRow,
    Refused,
)
from spendgate.providers.admin.openai import OpenAIAdminClient

__all__ = (
    "KEY_VARIABLES",
    "AdminApiError",
    "AdminClient",
    "AdminKeyError",
    "AdminResponseError",
    "AnthropicAdminClient",
    "Fetched",
    "OpenAIAdminClient",
    "ProviderCostRow",
    "ProviderReport",
    "ProviderUsageRow",
    "Refused",
    "RetryPolicy",
    "admin_client",
    "fetch_provider_report",
)

AdminClient = OpenAIAdminClient | AnthropicAdminClient
KEY_VARIABLES: Mapping[str, str] = {"openai": openai_admin.KEY_VARIABLE, "anthropic": anthropic_admin.KEY_VARIABLE}
PROVIDER_LABELS: Mapping[str, str] = {"openai": "OpenAI", "anthropic": "Anthropic"}


def admin_client(
    provider: str,
    *,
    base_url: str,
    environ: Mapping[str, str],
    session: aiohttp.ClientSession | None = None,
    sleep: Sleep = asyncio.sleep,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so one shared default is safe
    timeout: float = 60.0,
    page_limit: int | None = None,
) -> AdminClient:
    """The admin client of ``provider`` (``openai`` or ``anthropic``) at ``base_url``, its key
    read from ``environ`` (pass ``os.environ`` at the edge). Raises ``AdminKeyError`` naming the
    variable when the key is not set."""
    if provider not in KEY_VARIABLES:
        raise ValueError(f"unknown provider {provider!r}: openai or anthropic")
    variable = KEY_VARIABLES[provider]
    key = (environ.get(variable) or "").strip()
    if not key:
        label = PROVIDER_LABELS[provider]
        raise AdminKeyError(f"{variable} is not set: reconciling with {label} needs an admin key of the organization")
    if provider == "openai":
        headers = {"authorization": f"Bearer {key}"}
    else:
        headers = {"x-api-key": key, "anthropic-version": anthropic_admin.API_VERSION}
    http = AdminHttp(
        provider_label=PROVIDER_LABELS[provider],
        key_variable=variable,
        base_url=base_url,
        headers=headers,
        session=session,
        sleep=sleep,
        retry=retry,
        timeout=timeout,
    )
    limit = {} if page_limit is None else {"page_limit": page_limit}
    if provider == "openai":
        return OpenAIAdminClient(http, **limit)
    return AnthropicAdminClient(http, **limit)


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """A provider's usage and costs over ``[since, until]`` (UTC days, inclusive)."""

    provider: str
    since: date
    until: date
    usage: tuple[ProviderUsageRow, ...]
    costs: tuple[ProviderCostRow, ...]
    refused: tuple[Refused, ...]


async def fetch_provider_report(client: AdminClient, since: date, until: date) -> ProviderReport:
    """Both reports of ``client``'s provider for the range, one after the other (admin APIs are
    rate-limited, and an error in one leaves nothing running behind it)."""
    usage = await client.usage(since, until)
    costs = await client.costs(since, until)
    provider = "openai" if isinstance(client, OpenAIAdminClient) else "anthropic"
    return ProviderReport(provider, since, until, usage.rows, costs.rows, usage.refused + costs.refused)

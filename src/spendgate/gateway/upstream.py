"""Where a request goes: the provider it is for, its URL and credentials.

OpenAI and Anthropic are built in; any OpenAI-compatible provider configured by name is
chosen with the model prefix ``NAME/``. ``openai/`` and ``anthropic/`` name the built-in ones;
``anthropic/`` on ``/v1/chat/completions`` goes to Anthropic's OpenAI-compatible endpoint
(``<anthropic base URL>/v1/chat/completions``, same key, priced at Anthropic's rates). A prefix
that names no provider is refused rather than sent to OpenAI under the full name (where it
would be recorded as an unpriced OpenAI model). Credentials come from the gateway's
environment and are put on the upstream request only; the client's gateway key never leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spendgate.gateway.errors import ANTHROPIC, OPENAI, GatewayError, invalid_request
from spendgate.gateway.routes import Route
from spendgate.settings import DEFAULT_PRICE_PROVIDERS, Settings


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str  # the provider as recorded in the ledger
    family: str  # wire format: openai or anthropic
    base_url: str
    auth_headers: tuple[tuple[str, str], ...]
    genai_provider: str | None  # genai-prices provider id, None when only overrides price it
    missing_credential: str | None = None  # env var to set, when a built-in provider has no key
    kind: str = "openai"  # openai (compatible), gemini or azure: see settings.ProviderConfig
    deployments: Mapping[str, str] = field(default_factory=dict)  # azure: deployment -> model

    def url_for(self, path: str) -> str:
        """The upstream URL of one of the gateway's own endpoints (``/v1/…``)."""
        # OpenAI-shaped base URLs end in /v1 (as the SDK's base_url does); Anthropic's don't.
        # Gemini and Azure are configured by their resource's base URL; their OpenAI-compatible
        # endpoints live under it: Gemini's /v1beta/openai/…, Azure's /openai/v1/….
        if self.kind == "gemini":
            return self.base_url + "/v1beta/openai" + path[3:]
        if self.kind == "azure":
            return self.base_url + "/openai/v1" + path[3:]
        if self.family == OPENAI:
            return self.base_url + path[3:]
        return self.base_url + path

    def model_for(self, name: str) -> str:
        """The model a name means here: an Azure deployment's model when configured."""
        return self.deployments.get(name, name)


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Upstream
    model: str  # the model name sent upstream (prefix removed)
    model_rewritten: bool
    url: str | None = None  # a native path's upstream URL (Gemini, Azure); else url_for(route)
    priced_as: str | None = None  # the model it is priced as, when not ``model`` (an Azure deployment's)

    @property
    def price_model(self) -> str:
        return self.priced_as or self.model


def _openai_auth(key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),) if key else ()


def _auth(kind: str, key: str | None) -> tuple[tuple[str, str], ...]:
    # Each API's own header: Google's x-goog-api-key, Azure's api-key, a bearer token elsewhere.
    if not key:
        return ()
    if kind == "gemini":
        return (("x-goog-api-key", key),)
    if kind == "azure":
        return (("api-key", key),)
    return _openai_auth(key)


def _missing(kind: str, env: str | None, credentials: Mapping[str, str]) -> str | None:
    """The env var a Gemini or Azure provider still needs (neither answers without a key; an
    OpenAI-compatible server, such as a local vLLM, may need none)."""
    if kind == "openai" or not env or credentials.get(env):
        return None
    return env


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        credentials: Mapping[str, str] = settings.credentials
        openai_key = credentials.get("OPENAI_API_KEY")
        anthropic_key = credentials.get("ANTHROPIC_API_KEY")
        self.openai = Upstream(
            "openai",
            OPENAI,
            settings.openai_base_url.rstrip("/"),
            _openai_auth(openai_key),
            "openai",
            None if openai_key else "OPENAI_API_KEY",
        )
        self.anthropic = Upstream(
            "anthropic",
            ANTHROPIC,
            settings.anthropic_base_url.rstrip("/"),
            (("x-api-key", anthropic_key),) if anthropic_key else (),
            "anthropic",
            None if anthropic_key else "ANTHROPIC_API_KEY",
        )
        # Anthropic's OpenAI-compatible chat completions: the same key, as a bearer token (what
        # the OpenAI SDK sends when pointed at it), OpenAI's wire format.
        self.anthropic_openai_compatible = Upstream(
            "anthropic",
            OPENAI,
            settings.anthropic_base_url.rstrip("/") + "/v1",
            _openai_auth(anthropic_key),
            "anthropic",
            None if anthropic_key else "ANTHROPIC_API_KEY",
        )
        self.custom = {
            name: Upstream(
                name,
                OPENAI,
                config.base_url,
                _auth(config.kind, credentials.get(config.api_key_env) if config.api_key_env else None),
                config.price_provider or DEFAULT_PRICE_PROVIDERS.get(config.kind),
                _missing(config.kind, config.api_key_env, credentials),
                kind=config.kind,
                deployments=config.deployments,
            )
            for name, config in settings.providers.items()
        }

    @property
    def genai_provider_ids(self) -> dict[str, str | None]:
        ids: dict[str, str | None] = {"openai": "openai", "anthropic": "anthropic"}
        ids.update({name: u.genai_provider for name, u in self.custom.items()})
        return ids

    def resolve(self, route: Route, model: str) -> Target:
        native = self.openai if route.family == OPENAI else self.anthropic
        prefix, slash, rest = model.partition("/")
        if not slash:
            return Target(native, model, False)
        if not rest:
            raise invalid_request(f"model {model!r} names a provider but no model: use {prefix}/MODEL")
        if prefix in self.custom:
            if route.family != OPENAI:
                raise invalid_request(f"provider {prefix!r} is OpenAI-compatible; call it through /v1/chat/completions")
            upstream = self.custom[prefix]
            return Target(upstream, rest, True, priced_as=upstream.model_for(rest))
        if prefix == route.family:
            return Target(native, rest, True)
        if prefix == ANTHROPIC and route.kind == "chat":
            return Target(self.anthropic_openai_compatible, rest, True)
        if prefix == ANTHROPIC:
            raise invalid_request(
                f"Anthropic models are served on /v1/messages, and on /v1/chat/completions (Anthropic's "
                f"OpenAI-compatible endpoint), not on {route.path}"
            )
        if prefix == OPENAI:
            raise invalid_request(
                f"OpenAI models are served on /v1/chat/completions, /v1/responses, /v1/completions and "
                f"/v1/embeddings, not on {route.path}"
            )
        known = ", ".join([OPENAI, ANTHROPIC, *sorted(self.custom)])
        raise invalid_request(
            f"model {model!r}: no provider {prefix!r} is configured (providers: {known}); add "
            f"[providers.{prefix}] to the configuration file, or name a configured provider as the prefix"
        )

    def check_credentials(self, upstream: Upstream) -> None:
        if upstream.missing_credential:
            raise GatewayError(
                502,
                "upstream_error",
                f"spendgate has no credential for {upstream.name}: set {upstream.missing_credential} "
                "in the gateway's environment",
            )

"""The providers' own paths the gateway also serves: Gemini's ``generateContent`` and Azure
OpenAI's ``/openai/…`` (deployment URLs with ``api-version``, and the ``/openai/v1/`` form), so
``google-genai`` and ``openai.AzureOpenAI`` work by changing only their endpoint and key.

A native path goes to the one configured provider of its kind (``[providers.NAME] kind =
"gemini"`` or ``"azure"``); with several of a kind, the path is prefixed with the provider's
name (``/NAME/v1beta/models/…``, ``/NAME/openai/…``). The query string goes upstream as it came
(``alt=sse``, ``api-version``), but for a Gemini ``key=`` parameter: that is the gateway key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from spendgate.gateway.errors import GEMINI, OPENAI, GatewayError, not_found
from spendgate.gateway.routes import Route
from spendgate.gateway.upstream import Target, Upstream, Upstreams

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_GEMINI = re.compile(rf"/(v1beta|v1|v1alpha)/models/({_NAME}):(generateContent|streamGenerateContent)")
_AZURE_DEPLOYMENT = re.compile(rf"/openai/deployments/({_NAME})/(chat/completions|completions|embeddings)")
_AZURE_V1 = re.compile(r"/openai/v1/(chat/completions|completions|embeddings|responses)")
_AZURE_RESPONSES = "/openai/responses"

_KINDS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
}
GEMINI_ROUTES = {
    "generateContent": Route("/{version}/models/{model}:generateContent", "POST", GEMINI, "generate"),
    "streamGenerateContent": Route(
        "/{version}/models/{model}:streamGenerateContent", "POST", GEMINI, "stream_generate"
    ),
}
AZURE_DEPLOYMENT_ROUTES = {
    tail: Route(f"/openai/deployments/{{deployment}}/{tail}", "POST", OPENAI, kind) for tail, kind in _KINDS.items()
}
AZURE_V1_ROUTES = {tail: Route(f"/openai/v1/{tail}", "POST", OPENAI, kind) for tail, kind in _KINDS.items()}
AZURE_V1_ROUTES["/openai/responses"] = Route(_AZURE_RESPONSES, "POST", OPENAI, "responses")


@dataclass(frozen=True, slots=True)
class NativeRequest:
    route: Route
    upstream: Upstream
    url: str  # upstream URL, query string included
    model: str | None  # from the path (Gemini, an Azure deployment); None: the body's
    stream: bool  # the path itself asks for a stream (streamGenerateContent)
    key: str | None = None  # a gateway key sent as ?key= (Gemini)

    def target(self, body_model: str | None) -> Target:
        name = self.model or body_model or ""
        return Target(self.upstream, name, False, self.url, priced_as=self.upstream.model_for(name))


def is_gemini_path(path: str) -> bool:
    return ":generateContent" in path or ":streamGenerateContent" in path or path.startswith("/v1beta/")


def match_native(path: str, query: bytes, upstreams: Upstreams) -> NativeRequest | None:
    """The native request ``path`` is, or None when it is no provider's native path.

    Raises a 404 ``GatewayError`` for a native path no configured provider serves."""
    named = _named_provider(path, upstreams)
    if named is not None:
        upstream, rest = named
    else:
        upstream, rest = None, path
    gemini = _GEMINI.fullmatch(rest)
    if gemini is not None:
        upstream = upstream or _only(upstreams, "gemini", path)
        if upstream.kind != "gemini":
            return None
        version, model, method = gemini.groups()
        params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        key = next((value for name, value in params if name == "key"), None)
        kept = urlencode([(name, value) for name, value in params if name != "key"])
        url = f"{upstream.base_url}/{version}/models/{model}:{method}" + (f"?{kept}" if kept else "")
        return NativeRequest(GEMINI_ROUTES[method], upstream, url, model, method == "streamGenerateContent", key)

    deployment = _AZURE_DEPLOYMENT.fullmatch(rest)
    v1 = None if deployment else _AZURE_V1.fullmatch(rest)
    if deployment is None and v1 is None and rest != _AZURE_RESPONSES:
        return None
    upstream = upstream or _only(upstreams, "azure", path)
    if upstream.kind != "azure":
        return None
    url = upstream.base_url + rest + (f"?{query.decode('latin-1')}" if query else "")
    if deployment is not None:
        name, tail = deployment.groups()
        return NativeRequest(AZURE_DEPLOYMENT_ROUTES[tail], upstream, url, name, False)
    route = AZURE_V1_ROUTES[v1.group(1)] if v1 is not None else AZURE_V1_ROUTES[_AZURE_RESPONSES]
    return NativeRequest(route, upstream, url, None, False)


def _named_provider(path: str, upstreams: Upstreams) -> tuple[Upstream, str] | None:
    """``/NAME/rest`` for a configured Gemini or Azure provider NAME."""
    name, slash, rest = path[1:].partition("/")
    upstream = upstreams.custom.get(name) if slash else None
    if upstream is None or upstream.kind == "openai":
        return None
    return upstream, "/" + rest


def _only(upstreams: Upstreams, kind: str, path: str) -> Upstream:
    found = [u for u in upstreams.custom.values() if u.kind == kind]
    if len(found) == 1:
        return found[0]
    label = "Gemini" if kind == "gemini" else "Azure OpenAI"
    if not found:
        error = not_found(path)
        raise GatewayError(
            error.status,
            error.type,
            f'{error.message}: no {label} provider is configured; add [providers.NAME] with kind = "{kind}" '
            "to the configuration file",
        )
    names = ", ".join(sorted(u.name for u in found))
    raise GatewayError(
        404,
        "not_found_error",
        f"several {label} providers are configured ({names}): prefix the path with one's name, "
        f"e.g. /{found[0].name}{path}",
    )

"""Azure OpenAI through the gateway with openai.AzureOpenAI: deployment URLs with api-version, the
/openai/v1/ form, the api-key header, streamed and not, priced from genai-prices (azure)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from spendgate.settings import ProviderConfig
from tests.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, Gateway, Simulator

UPSTREAM_AZURE_KEY = "azure-upstream-test-key"
API_VERSION = "2024-10-21"
MTOK = Decimal(1_000_000)
# gpt-4o list prices at Azure (USD / MTok).
GPT_4O_IN, GPT_4O_CACHED, GPT_4O_OUT = Decimal("2.5"), Decimal("1.25"), Decimal("10")


@pytest.fixture
def azure_gateway(make_gateway, simulator: Simulator) -> Gateway:
    gateway = make_gateway(
        providers={
            "azure": ProviderConfig(
                name="azure",
                base_url=simulator.url,
                api_key_env="AZURE_OPENAI_API_KEY",
                kind="azure",
                deployments={"prod-4o": "gpt-4o"},
            )
        },
        credentials={
            "OPENAI_API_KEY": UPSTREAM_OPENAI_KEY,
            "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY,
            "AZURE_OPENAI_API_KEY": UPSTREAM_AZURE_KEY,
        },
    )
    gateway.team("ops")
    gateway.project("tickets", team="ops")
    return gateway


def _azure(gateway: Gateway, key: str, **kwargs) -> openai.AzureOpenAI:
    client = openai.AzureOpenAI(
        azure_endpoint=gateway.url, api_key=key, api_version=API_VERSION, max_retries=0, **kwargs
    )
    gateway._clients.append(client)
    return client


def test_deployment_url_with_api_version_and_the_api_key_header(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    key = gateway.key("tickets-app", project="tickets")
    raw = _azure(gateway, key).chat.completions.with_raw_response.create(
        model="prod-4o",
        messages=[{"role": "user", "content": "[[sim input=1000 cached=400 output=200 model=gpt-4o-2024-11-20]]"}],
    )
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 1000
    [record] = gateway.sim.log.records
    assert record.path == "/openai/deployments/prod-4o/chat/completions"
    assert record.headers["api-key"] == UPSTREAM_AZURE_KEY  # the gateway's credential, never the sg- key
    [event] = gateway.events()
    assert (event["provider"], event["model"], event["project"]) == ("azure", "gpt-4o-2024-11-20", "tickets")
    assert event["endpoint"] == "/openai/deployments/{deployment}/chat/completions"
    expected = (600 * GPT_4O_IN + 400 * GPT_4O_CACHED + 200 * GPT_4O_OUT) / MTOK
    assert Decimal(event["cost_usd"]) == expected == Decimal(raw.headers["x-spendgate-cost-usd"])
    assert "azure/gpt-4o" in event["price_source"]


def test_a_deployment_is_priced_as_its_configured_model(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    client = _azure(gateway, gateway.key("tickets-app", project="tickets"), azure_deployment="prod-4o")
    client.chat.completions.create(
        model="prod-4o", messages=[{"role": "user", "content": "[[sim input=100 output=10]]"}]
    )
    [event] = gateway.events()
    # The fake answers with the deployment's name: the configured model prices it.
    assert event["model"] == "prod-4o"
    assert Decimal(event["cost_usd"]) == (100 * GPT_4O_IN + 10 * GPT_4O_OUT) / MTOK


def test_streaming_through_a_deployment_gets_usage_without_showing_it(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    client = _azure(gateway, gateway.key("tickets-app", project="tickets"))
    chunks = list(
        client.chat.completions.create(
            model="prod-4o",
            messages=[{"role": "user", "content": "[[sim input=50 output=20 chunks=4 model=gpt-4o-2024-11-20]]"}],
            stream=True,
        )
    )
    assert chunks and all(chunk.usage is None for chunk in chunks)
    assert gateway.sim.log.records[-1].body["stream_options"] == {"include_usage": True}
    [event] = gateway.events()
    assert (event["stream"], event["input_tokens"], event["output_tokens"], event["estimated"]) == (True, 50, 20, False)
    assert Decimal(event["cost_usd"]) == (50 * GPT_4O_IN + 20 * GPT_4O_OUT) / MTOK


def test_the_openai_v1_form_with_the_plain_openai_client(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    key = gateway.key("tickets-app", project="tickets")
    client = openai.OpenAI(base_url=f"{gateway.url}/openai/v1/", api_key=key, max_retries=0)
    gateway._clients.append(client)
    client.chat.completions.create(
        model="prod-4o", messages=[{"role": "user", "content": "[[sim input=10 output=5 model=gpt-4o-2024-11-20]]"}]
    )
    response = client.responses.create(model="prod-4o", input="[[sim input=10 output=5 model=gpt-4o-2024-11-20]]")
    assert response.usage.total_tokens == 15
    assert [r.path for r in gateway.sim.log.records] == ["/openai/v1/chat/completions", "/openai/v1/responses"]
    assert all(r.headers["api-key"] == UPSTREAM_AZURE_KEY for r in gateway.sim.log.records)
    events = gateway.events()
    assert [e["endpoint"] for e in events] == ["/openai/v1/chat/completions", "/openai/v1/responses"]
    assert all(e["provider"] == "azure" and e["cost_usd"] for e in events)


def test_the_model_prefix_on_the_gateways_own_endpoint(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    gateway.openai(gateway.key("tickets-app", project="tickets")).chat.completions.create(
        model="azure/prod-4o", messages=[{"role": "user", "content": "[[sim input=10 output=5]]"}]
    )
    [record] = gateway.sim.log.records
    assert record.path == "/openai/v1/chat/completions" and record.body["model"] == "prod-4o"
    [event] = gateway.events()
    assert event["provider"] == "azure" and Decimal(event["cost_usd"]) == (10 * GPT_4O_IN + 5 * GPT_4O_OUT) / MTOK


def test_errors_in_openais_shape(azure_gateway: Gateway) -> None:
    gateway = azure_gateway
    with pytest.raises(openai.AuthenticationError):
        _azure(gateway, "sg-unknown").chat.completions.create(
            model="prod-4o", messages=[{"role": "user", "content": "x"}]
        )
    key = gateway.key("tickets-app", project="tickets")
    with pytest.raises(openai.BadRequestError, match="unknown project"):
        _azure(gateway, key).chat.completions.create(
            model="prod-4o",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-spendgate-project": "nope"},
        )
    assert gateway.sim.log.records == []
    with pytest.raises(openai.RateLimitError):
        _azure(gateway, key).chat.completions.create(
            model="prod-4o", messages=[{"role": "user", "content": "[[sim status=429]]"}]
        )
    assert [e["status"] for e in gateway.events()] == ["error"]
    # A GET on a native path is refused in the OpenAI shape.
    answer = httpx.get(f"{gateway.url}/openai/deployments/prod-4o/chat/completions", headers={"api-key": key})
    assert answer.status_code == 405 and answer.json()["error"]["type"] == "invalid_request_error"


def test_azure_paths_without_an_azure_provider_are_a_404(gateway: Gateway) -> None:
    answer = httpx.post(f"{gateway.url}/openai/deployments/d/chat/completions?api-version=1", json={})
    assert answer.status_code == 404
    assert 'kind = "azure"' in answer.json()["error"]["message"]


def test_gemini_and_azure_providers_in_the_configuration_file(tmp_path) -> None:
    from spendgate.settings import SettingsError, load_settings

    config = tmp_path / "spendgate.toml"
    config.write_text(
        '[providers.azure]\nkind = "azure"\nbase_url = "https://r.openai.azure.com/"\napi_key_env = "AZ"\n'
        '[providers.azure.deployments]\nprod-4o = "gpt-4o"\n\n'
        '[providers.gemini]\nkind = "gemini"\nbase_url = "https://generativelanguage.googleapis.com"\n'
    )
    settings = load_settings(environ={"AZ": "secret"}, config_path=config)
    azure, gemini = settings.providers["azure"], settings.providers["gemini"]
    assert (azure.kind, azure.base_url, dict(azure.deployments)) == (
        "azure",
        "https://r.openai.azure.com",
        {"prod-4o": "gpt-4o"},
    )
    assert settings.credentials["AZ"] == "secret"
    assert gemini.kind == "gemini"
    config.write_text('[providers.x]\nkind = "bedrock"\nbase_url = "https://x"\n')
    with pytest.raises(SettingsError, match="kind must be one of openai, gemini, azure"):
        load_settings(environ={}, config_path=config)
    config.write_text('[providers.x]\nbase_url = "https://x"\n[providers.x.deployments]\nd = "m"\n')
    with pytest.raises(SettingsError, match="deployments apply to kind"):
        load_settings(environ={}, config_path=config)


def test_a_missing_azure_credential_is_a_502_naming_it(make_gateway, simulator: Simulator) -> None:
    gateway = make_gateway(
        providers={"azure": ProviderConfig(name="azure", base_url=simulator.url, api_key_env="AZ_KEY", kind="azure")}
    )
    with pytest.raises(openai.InternalServerError, match="AZ_KEY"):
        _azure(gateway, gateway.key("k")).chat.completions.create(
            model="d", messages=[{"role": "user", "content": "x"}]
        )
    assert gateway.sim.log.records == []

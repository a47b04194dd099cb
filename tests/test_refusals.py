"""Requests the gateway refuses: in the provider's error shape, and never forwarded."""

from __future__ import annotations

import re
import time

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway


@pytest.fixture
def key(gateway: Gateway) -> str:
    gateway.team("growth")
    gateway.project("search", team="growth")
    gateway.project("onboarding", team="growth")
    return gateway.key("growth-key", project="search")


def _assert_nothing_forwarded(gateway: Gateway) -> None:
    assert gateway.sim.log.records == [], "a refused request reached the provider"
    assert gateway.events() == [], "a refused request was billed"


def test_missing_unknown_and_revoked_keys_are_401_in_each_shape(gateway: Gateway, key: str) -> None:
    with pytest.raises(openai.AuthenticationError) as unknown:
        gateway.openai("sg-not-a-real-key").chat.completions.create(model="gpt-4o", messages=[])
    assert unknown.value.body["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError) as unknown_anthropic:
        gateway.anthropic("sg-nope").messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[])
    assert unknown_anthropic.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "unknown gateway key"},
    }
    missing = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
    assert missing.status_code == 401
    assert "missing gateway key" in missing.json()["error"]["message"]

    gateway.store.revoke_key("growth-key")
    gateway.wait_for_directory()
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        gateway.openai(key).chat.completions.create(model="gpt-4o", messages=[])
    _assert_nothing_forwarded(gateway)


def test_revocation_reaches_a_running_gateway_within_a_refresh(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    gateway.store.revoke_key("growth-key")  # as the CLI would, from outside the gateway
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a revoked key still worked 5 s later")
    assert gateway.app.gateway.directory.version == gateway.store.config_version()


def test_malformed_json_is_400_in_each_shape(gateway: Gateway, key: str) -> None:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    openai_shape = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert openai_shape.status_code == 400
    assert openai_shape.json()["error"]["type"] == "invalid_request_error"
    anthropic_shape = httpx.post(
        f"{gateway.url}/v1/messages",
        content=b"[1, 2]",
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    assert anthropic_shape.status_code == 400
    body = anthropic_shape.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    no_model = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": []}, headers=headers)
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
    _assert_nothing_forwarded(gateway)


def test_unknown_project_is_400_listing_the_known_ones(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key, default_headers={"x-spendgate-project": "serach"})
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    message = error.value.body["message"]
    assert "'serach'" in message and "onboarding, search" in message
    with pytest.raises(anthropic.BadRequestError):
        gateway.anthropic(key, default_headers={"x-spendgate-project": "nope"}).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    _assert_nothing_forwarded(gateway)


def test_malformed_tags_are_400(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key, default_headers={"x-spendgate-tags": "agent=checkout, oops"})
    with pytest.raises(openai.BadRequestError, match="key=value"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    _assert_nothing_forwarded(gateway)


def test_tags_are_bounded_in_count_size_and_shape(gateway: Gateway, key: str) -> None:
    """900 tags in a 905 KB header were stored on the event (~2.8 MB of disk per request)."""
    # The 905 KB header itself no longer reaches the tag parser: all headers together are
    # capped at 64 KiB (a 431 from the server); a tags header just past its own limit is a 400.
    many = ", ".join(f"tag{i}=value-{i}-" + "x" * 990 for i in range(900))
    with pytest.raises(openai.APIStatusError) as too_large:
        gateway.openai(key, default_headers={"x-spendgate-tags": many}).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert too_large.value.status_code == 431
    for header, problem in [
        (", ".join(f"t{i}=" + "v" * 250 for i in range(33)), "longer than 8192 characters"),
        (", ".join(f"t{i}=v" for i in range(40)), "more than 32 tags"),
        ("agent=a=b", "one '=' in each"),
        ("agent=x, agent=y", "given twice"),
        ("agent=" + "v" * 300, "longer than 256 characters"),
    ]:
        client = gateway.openai(key, default_headers={"x-spendgate-tags": header})
        with pytest.raises(openai.BadRequestError, match=re.escape(problem)):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError, match="more than 32 tags"):
        gateway.anthropic(
            key, default_headers={"x-spendgate-tags": ", ".join(f"t{i}=v" for i in range(33))}
        ).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    _assert_nothing_forwarded(gateway)
    tags = ", ".join(f"t{i}=" + "v" * 200 for i in range(32))  # at the limits: accepted
    gateway.openai(key, default_headers={"x-spendgate-tags": tags}).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    [event] = gateway.events()
    assert len(event["tags"]) == 32


def test_body_over_the_limit_is_413(make_gateway, key: str) -> None:
    small = make_gateway(max_body_bytes=2048)
    secret = small.key("k")
    client = small.openai(secret)
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * 5000}])
    assert error.value.status_code == 413
    assert error.value.body["type"] == "request_too_large"
    with pytest.raises(anthropic.APIStatusError) as anthropic_error:
        small.anthropic(secret).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert anthropic_error.value.status_code == 413
    assert anthropic_error.value.body["error"]["type"] == "request_too_large"
    # Within the limit it goes through.
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "short"}])
    assert len(small.sim.log.records) == 1


def test_unknown_path_and_wrong_method(gateway: Gateway, key: str) -> None:
    assert httpx.post(f"{gateway.url}/v1/nothing-here", json={}).status_code == 404
    wrong = httpx.get(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"})
    assert wrong.status_code == 405
    _assert_nothing_forwarded(gateway)

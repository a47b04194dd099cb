"""The simulator, driven by the official SDKs pointed straight at it (and by raw aiohttp where the
exact wire matters): every response and stream must parse, and carry exactly the usage the
``[[sim ...]]`` directive asked for."""

from __future__ import annotations

import asyncio
import base64
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import orjson
import pytest

from spendgate.simulator import (
    DirectiveError,
    RequestRecord,
    SimulatorLog,
    create_simulator_app,
    parse_directives,
    serve_in_thread,
)
from spendgate.simulator.plan import make_plan

CHAT_MODEL = "gpt-4o-mini"
CLAUDE_MODEL = "claude-haiku-4-5"  # not one the SDK warns is deprecated


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulator() -> Iterator[Any]:
    app = create_simulator_app()
    server = serve_in_thread(app)
    try:
        yield app, server
    finally:
        server.stop()


@pytest.fixture
def app(simulator: Any) -> Any:
    app, _ = simulator
    app.log.clear()
    return app


@pytest.fixture
def url(simulator: Any, app: Any) -> str:
    return simulator[1].url


@pytest.fixture
def oai(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aoai(url: str) -> Any:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aclaude(url: str) -> Any:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def chat_usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def claude_usage(input_tokens: int, output: int, read: int = 0, write: int = 0, write_1h: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write - write_1h,
            "ephemeral_1h_input_tokens": write_1h,
        },
        "service_tier": "standard",
    }


async def raw_post(url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=body, headers=headers) as response,
    ):
        return response.status, response.headers, await response.read()


def sse_data(raw: bytes) -> list[Any]:
    """The JSON payloads of an SSE body ("[DONE]" kept as a string)."""
    payloads = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            payloads.append(data if data == "[DONE]" else orjson.loads(data))
    return payloads


def sse_event_names(raw: bytes) -> list[str]:
    return [line[len("event: ") :] for line in raw.decode().splitlines() if line.startswith("event: ")]


# ---- directives --------------------------------------------------------------------------------


def test_parse_directives_reads_key_values() -> None:
    assert parse_directives(b'{"content": "hi [[sim input=10 output=5 model=gpt-x]] there"}') == {
        "input": "10",
        "output": "5",
        "model": "gpt-x",
    }


def test_parse_directives_first_occurrence_wins_and_bare_keys_mean_one() -> None:
    raw = b"[[sim no_usage cached=3]] later [[sim cached=9]]"
    assert parse_directives(raw) == {"no_usage": "1", "cached": "3"}


def test_parse_directives_without_a_directive() -> None:
    assert parse_directives(b'{"messages": []}') == {}
    assert parse_directives(b"[[sim input=3") == {}  # never closed
    assert parse_directives(b"[[sim]]") == {}
    assert parse_directives(b"[[simulate input=3]] [[sim output=2]]") == {"output": "2"}


def test_parse_directives_ignores_json_escaping_around_it() -> None:
    raw = orjson.dumps({"content": 'say "hi"\n[[sim input=7]]\t\u00e9'})
    assert parse_directives(raw) == {"input": "7"}


def test_plan_defaults_follow_the_text_and_max_tokens() -> None:
    raw = b"x" * 400
    assert make_plan(raw, {"max_tokens": 20}, "openai").output_tokens == 20
    assert make_plan(raw, {"max_completion_tokens": 500}, "openai").output_tokens == 16
    plan = make_plan(raw, {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}, "anthropic")
    # 3 framing + "user" (1) + 400 characters (100) + 3 priming
    assert (plan.input_tokens, plan.output_tokens, plan.model, plan.text) == (107, 16, "m", "ok ok ok ok")
    assert make_plan(b"{}", {}, "openai").input_tokens == 3  # the reply priming alone
    assert make_plan(b"{}", {}, "openai", framed=False).input_tokens == 1


def test_plan_bills_input_as_providers_count_it() -> None:
    """OpenAI's cookbook: 3 tokens per message, 1 more for a name, 3 to prime the reply."""
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},  # 3 + 2 + 3
            {"role": "user", "name": "ana", "content": "hi"},  # 3 + 1 + 1 + 1 + 1 (name)
        ]
    }
    assert make_plan(b"", chat, "openai").input_tokens == 8 + 7 + 3
    anthropic = {"system": "You are a scientist", "messages": [{"role": "user", "content": "Hello, Claude"}]}
    assert make_plan(b"", anthropic, "anthropic").input_tokens == (3 + 5) + (3 + 1 + 4) + 3
    responses = {"instructions": "Be brief.", "input": "hi"}
    assert make_plan(b"", responses, "openai").input_tokens == (3 + 3) + (3 + 1) + 3
    embeddings = {"input": ["hello", "world"]}
    assert make_plan(b"", embeddings, "openai", framed=False).input_tokens == 4
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x" * 9000}}]}]}
    assert make_plan(b"", image, "openai").input_tokens == 3 + 1 + 765 + 3


def test_plan_bills_every_answer_generated() -> None:
    assert make_plan(b"", {"n": 5, "max_tokens": 10}, "openai").output_tokens == 50
    assert make_plan(b"", {"n": 5, "max_tokens": 10}, "openai").choices == 5
    best = make_plan(b"", {"n": 2, "best_of": 4, "max_tokens": 10}, "openai", framed=False)
    assert (best.output_tokens, best.choices) == (40, 2)
    with pytest.raises(DirectiveError, match="n must be"):
        make_plan(b"", {"n": 0}, "openai")


def test_plan_keeps_each_provider_convention_for_defaults() -> None:
    raw = b"y" * 40 + b"[[sim cached=30 reasoning=4]]"
    default_input = make_plan(b"", {"prompt": raw.decode()}, "openai", framed=False).input_tokens
    openai_plan = make_plan(raw, {"prompt": raw.decode()}, "openai", framed=False)
    assert (openai_plan.input_tokens, openai_plan.output_tokens) == (default_input + 30, 16 + 4)
    assert make_plan(raw, {"prompt": raw.decode()}, "anthropic", framed=False).input_tokens == default_input


def test_plan_rejects_typos_and_bad_values() -> None:
    with pytest.raises(DirectiveError, match="ouput"):
        make_plan(b"[[sim ouput=3]]", {}, "openai")
    with pytest.raises(DirectiveError, match="input"):
        make_plan(b"[[sim input=1.5]]", {}, "openai")
    with pytest.raises(DirectiveError, match="output"):
        make_plan(b"[[sim output=18446744073709551616]]", {}, "openai")  # 2**64: no encoder writes it
    with pytest.raises(DirectiveError, match="chunks"):
        make_plan(b"[[sim chunks=-1]]", {}, "openai")
    with pytest.raises(DirectiveError, match="choose one"):
        make_plan(b"[[sim break_after=1 end_after=1]]", {}, "openai")
    with pytest.raises(DirectiveError, match="cache_write_1h"):
        make_plan(b"[[sim cache_write=2 cache_write_1h=3]]", {}, "anthropic")


def test_absurd_and_negative_usage_is_reported_as_asked(oai: openai.OpenAI, app: Any) -> None:
    completion = oai.chat.completions.create(
        model=CHAT_MODEL, messages=user("[[sim input=10000000000000000000 output=-7]]")
    )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10**19, -7)


def test_end_after_ends_the_stream_cleanly_without_its_final_events(oai: openai.OpenAI, app: Any) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_MODEL,
            messages=user("[[sim end_after=2]]"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )  # no error: the connection ended as a complete answer would
    assert [c.choices[0].delta.content for c in chunks] == ["", "ok", " ok"]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert app.log.last.status == 200 and app.log.last.reported_usage is None


async def test_end_after_responses_and_messages_lack_their_final_event(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body in (
            ("/v1/responses", {"model": CHAT_MODEL}),
            ("/v1/messages", {"model": CLAUDE_MODEL, "max_tokens": 9}),
        ):
            body = {**body, "messages": user("[[sim end_after=1]]"), "stream": True}
            headers = {"Authorization": "Bearer k", "x-api-key": "k"}
            async with session.post(url + path, json=body, headers=headers) as response:
                names = sse_event_names(await response.read())  # read to a clean end
            assert names and not {"response.completed", "message_delta", "message_stop"} & set(names), path


def test_long_delta_is_one_line_of_that_size(oai: openai.OpenAI, app: Any) -> None:
    chunks = list(
        oai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim long_delta=100000]]"), stream=True)
    )
    assert [len(c.choices[0].delta.content or "") for c in chunks][-2:] == [100_000, 0]


async def test_defaults_without_directive_through_the_asgi_app() -> None:
    app = create_simulator_app()
    raw = orjson.dumps({"model": CHAT_MODEL, "max_tokens": 12, "messages": user("hello " * 30)})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
    await app({**scope, "headers": [(b"authorization", b"Bearer k")]}, receive, send)
    completion = orjson.loads(sent[1]["body"])
    assert completion["usage"] == chat_usage(3 + 1 + 45 + 3, 12)  # "hello " * 30 is 180 characters
    assert completion["choices"][0]["message"]["content"] == "ok ok ok ok"
    assert app.log.records[0].headers == {"authorization": "Bearer k"}


# ---- OpenAI chat completions -------------------------------------------------------------------


def test_chat_completion_reports_directive_usage(oai: openai.OpenAI, app: Any) -> None:
    completion = oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=user("hi [[sim input=120 cached=100 output=30 reasoning=10 model=gpt-echo text=yo]]"),
    )
    assert completion.model == "gpt-echo"
    assert completion.choices[0].message.content == "yo yo yo yo"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 30)
    assert completion.usage.prompt_tokens_details.cached_tokens == 100
    assert completion.usage.completion_tokens_details.reasoning_tokens == 10

    [record] = app.log.records
    assert isinstance(record, RequestRecord)
    assert (record.path, record.method, record.status) == ("/v1/chat/completions", "POST", 200)
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.body["model"] == CHAT_MODEL
    assert record.reported_usage == chat_usage(120, 30, cached=100, reasoning=10)


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(oai: openai.OpenAI, app: Any) -> None:
    stream = oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=user("[[sim input=50 output=7 chunks=3]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (50, 7)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1])
    assert text == "ok ok ok"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert app.log.last.reported_usage == chat_usage(50, 7)


async def test_chat_stream_wire_format_with_and_without_include_usage(url: str, app: Any) -> None:
    headers = {"Authorization": "Bearer k"}
    body = {"model": CHAT_MODEL, "messages": user("[[sim input=5 output=2]]"), "stream": True}

    status, response_headers, raw = await raw_post(url, "/v1/chat/completions", body, headers)
    assert status == 200 and response_headers["content-type"].startswith("text/event-stream")
    payloads = sse_data(raw)
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in payload for payload in payloads[:-1])
    assert app.log.last.reported_usage is None

    body["stream_options"] = {"include_usage": True}
    _, _, raw = await raw_post(url, "/v1/chat/completions", body, headers)
    *chunks, usage_chunk, done = sse_data(raw)
    assert done == "[DONE]"
    assert all(chunk["usage"] is None and len(chunk["choices"]) == 1 for chunk in chunks)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == chat_usage(5, 2)


async def test_async_chat_stream(aoai: openai.AsyncOpenAI) -> None:
    stream = await aoai.chat.completions.create(
        model=CHAT_MODEL,
        messages=user("[[sim chunks=6]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert [delta for delta in deltas if delta] == ["ok"] + [" ok"] * 5
    completion = await aoai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim output=3]]"))
    assert completion.usage is not None and completion.usage.completion_tokens == 3


def test_no_usage_omits_usage_everywhere(oai: openai.OpenAI, app: Any) -> None:
    completion = oai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim no_usage=1]]"))
    assert completion.usage is None
    stream = oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=user("[[sim no_usage]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert all(chunk.usage is None and chunk.choices for chunk in stream)
    assert [record.reported_usage for record in app.log.records] == [None, None]


# ---- OpenAI legacy completions -----------------------------------------------------------------


def test_legacy_completions(oai: openai.OpenAI, app: Any) -> None:
    completion = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="[[sim input=9 output=4]]")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "ok ok ok ok"
    assert completion.usage is not None and completion.usage.total_tokens == 13

    stream = oai.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="[[sim input=9 output=4]]",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices) == "ok ok ok ok"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 9
    assert app.log.last.reported_usage == chat_usage(9, 4)

    plain = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", stream=True))
    assert all(chunk.usage is None for chunk in plain)


# ---- OpenAI Responses API ----------------------------------------------------------------------

RESPONSES_USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 25},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 52,
}
RESPONSES_DIRECTIVE = "[[sim input=40 cached=25 output=12 reasoning=5]]"


def test_responses_create(oai: openai.OpenAI, app: Any) -> None:
    response = oai.responses.create(model="gpt-4.1", input=f"hello {RESPONSES_DIRECTIVE}")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "ok ok ok ok"
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 25
    assert response.usage.output_tokens_details.reasoning_tokens == 5
    assert app.log.last.reported_usage == RESPONSES_USAGE


def test_responses_create_stream_events(oai: openai.OpenAI, app: Any) -> None:
    events = list(oai.responses.create(model="gpt-4.1", input=RESPONSES_DIRECTIVE, stream=True))
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].response.usage is None
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.total_tokens == 52
    assert app.log.last.reported_usage == RESPONSES_USAGE


def test_responses_stream_helper(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-4.1", input="[[sim chunks=2 output=6 input=3]]") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["ok", " ok"]
    assert final.output_text == "ok ok"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (3, 6)


async def test_async_responses_stream_helper(aoai: openai.AsyncOpenAI) -> None:
    async with aoai.responses.stream(model="gpt-4.1", input=RESPONSES_DIRECTIVE) as stream:
        final = await stream.get_final_response()
    assert final.usage is not None and final.usage.input_tokens == 40


# ---- OpenAI embeddings and models --------------------------------------------------------------


def test_embeddings_base64_by_default_and_float_on_request(oai: openai.OpenAI, app: Any) -> None:
    default = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c [[sim input=11]]"])
    assert app.log.last.body["encoding_format"] == "base64"  # what the SDK asks for by default
    assert [item.index for item in default.data] == [0, 1, 2]
    assert default.usage.prompt_tokens == 11 and default.usage.total_tokens == 11

    floats = oai.embeddings.create(
        model="text-embedding-3-small", input="one [[sim input=11]]", encoding_format="float", dimensions=8
    )
    assert len(floats.data) == 1 and len(floats.data[0].embedding) == 8
    assert default.data[0].embedding[:8] == floats.data[0].embedding
    assert app.log.last.reported_usage == {"prompt_tokens": 11, "total_tokens": 11}


async def test_embeddings_base64_is_little_endian_float32(url: str) -> None:
    body = {"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64", "dimensions": 4}
    _, _, raw = await raw_post(url, "/v1/embeddings", body, {"Authorization": "Bearer k"})
    packed = base64.b64decode(orjson.loads(raw)["data"][0]["embedding"])
    assert len(packed) == 16
    assert list(struct.unpack("<4f", packed)) == [-0.375, -0.25, -0.125, 0.0]


def test_models_list_for_both_providers(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert CHAT_MODEL in [model.id for model in oai.models.list()]
    assert any(model.id.startswith("claude-") for model in claude.models.list())


# ---- Anthropic messages ------------------------------------------------------------------------

CLAUDE_DIRECTIVE = "[[sim input=20 cached=300 cache_write=50 cache_write_1h=20 output=9]]"


def test_messages_create(claude: anthropic.Anthropic, app: Any) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=100, system=f"be brief {CLAUDE_DIRECTIVE}", messages=user("hi")
    )
    assert message.content[0].type == "text" and message.content[0].text == "ok ok ok ok"
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (20, 9)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (300, 50)
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_1h_input_tokens == 20
    record = app.log.last
    assert record.reported_usage == claude_usage(20, 9, read=300, write=50, write_1h=20)
    assert record.headers["anthropic-version"]


def test_messages_create_stream_events(claude: anthropic.Anthropic, app: Any) -> None:
    events = list(
        claude.messages.create(model=CLAUDE_MODEL, max_tokens=100, messages=user(CLAUDE_DIRECTIVE), stream=True)
    )
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK drops "ping"
    start, delta = events[0], events[-2]
    assert start.message.usage.input_tokens == 20 and start.message.usage.output_tokens == 1
    assert start.message.usage.cache_read_input_tokens == 300
    assert delta.usage.output_tokens == 9
    assert app.log.last.reported_usage == claude_usage(20, 9, read=300, write=50, write_1h=20)


async def test_messages_wire_event_names(url: str) -> None:
    body = {"model": CLAUDE_MODEL, "max_tokens": 5, "messages": user("[[sim chunks=2]]"), "stream": True}
    _, _, raw = await raw_post(url, "/v1/messages", body, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert sse_event_names(raw) == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert sse_data(raw)[-2]["usage"] == {"output_tokens": 5}  # max_tokens 5 <= 64


def test_messages_stream_helper(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=CLAUDE_MODEL, max_tokens=100, messages=user(CLAUDE_DIRECTIVE)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "ok ok ok ok" == final.content[0].text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 9)
    assert final.usage.cache_creation_input_tokens == 50


async def test_async_messages(aclaude: anthropic.AsyncAnthropic) -> None:
    async with aclaude.messages.stream(
        model=CLAUDE_MODEL, max_tokens=100, messages=user("[[sim input=4 output=2 chunks=3]]")
    ) as stream:
        deltas = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert deltas == ["ok", " ok", " ok"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 2)
    message = await aclaude.messages.create(model=CLAUDE_MODEL, max_tokens=10, messages=user("[[sim input=8]]"))
    assert message.usage.input_tokens == 8 and message.usage.output_tokens == 10


def test_count_tokens(claude: anthropic.Anthropic, app: Any) -> None:
    counted = claude.messages.count_tokens(model=CLAUDE_MODEL, messages=user("[[sim input=77]]"))
    assert counted.input_tokens == 77
    assert app.log.last.path == "/v1/messages/count_tokens"
    assert app.log.last.reported_usage is None


# ---- failures ----------------------------------------------------------------------------------


def test_break_after_breaks_openai_stream_mid_way(oai: openai.OpenAI, app: Any) -> None:
    stream = oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=user("[[sim break_after=2]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "ok", " ok"]  # the role chunk, then the two deltas
    assert app.log.last.status == 200 and app.log.last.reported_usage is None


def test_break_after_breaks_anthropic_stream_mid_way(claude: anthropic.Anthropic, app: Any) -> None:
    received = []
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)),
        claude.messages.stream(model=CLAUDE_MODEL, max_tokens=9, messages=user("[[sim break_after=1]]")) as stream,
    ):
        received.extend(stream.text_stream)
    assert received == ["ok"]
    # message_start carried input usage before the break; the final output count never came.
    assert app.log.last.reported_usage == claude_usage(app.log.last.reported_usage["input_tokens"], 1)


async def test_break_after_seen_by_aiohttp(url: str) -> None:
    body = {"model": CHAT_MODEL, "messages": user("[[sim break_after=3]]"), "stream": True}
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/responses", json=body, headers={"Authorization": "Bearer k"}) as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                received += chunk
    names = sse_event_names(received)
    assert names.count("response.output_text.delta") == 3
    assert "response.completed" not in names


def test_rate_limit_error(oai: openai.OpenAI, claude: anthropic.Anthropic, app: Any) -> None:
    with pytest.raises(openai.RateLimitError) as openai_error:
        oai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim status=429]]"))
    assert openai_error.value.response.headers["retry-after"] == "1"
    assert openai_error.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model=CLAUDE_MODEL, max_tokens=5, messages=user("[[sim status=429]]"))
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model=CLAUDE_MODEL, max_tokens=5, messages=user("[[sim status=529]]"), stream=True)
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(openai.InternalServerError):
        oai.responses.create(model="gpt-4.1", input="[[sim status=500]]")
    assert [(record.status, record.reported_usage) for record in app.log.records] == [
        (429, None),
        (429, None),
        (529, None),
        (500, None),
    ]


def test_bad_directive_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="ouput"):
        oai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim ouput=3]]"))


async def test_auth_and_unknown_paths(url: str, app: Any) -> None:
    status, _, raw = await raw_post(url, "/v1/chat/completions", {"model": "m"}, {})
    assert status == 401 and orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = await raw_post(url, "/v1/messages", {"model": "m"}, {"anthropic-version": "2023-06-01"})
    assert status == 401 and orjson.loads(raw)["error"]["type"] == "authentication_error"
    # Anthropic's classic header works as well as the bearer token the SDK 2.x sends.
    status, _, raw = await raw_post(url, "/v1/messages", {"model": "m", "max_tokens": 3}, {"x-api-key": "k"})
    assert status == 200 and orjson.loads(raw)["usage"]["output_tokens"] == 3
    status, _, raw = await raw_post(url, "/v1/nope", {}, {"Authorization": "Bearer k"})
    assert status == 404 and "error" in orjson.loads(raw)
    assert [record.status for record in app.log.records] == [401, 401, 200, 404]


async def test_delay_ms_delays_the_first_byte(aoai: openai.AsyncOpenAI) -> None:
    started = time.perf_counter()
    await aoai.chat.completions.create(model=CHAT_MODEL, messages=user("[[sim delay_ms=150]]"))
    assert time.perf_counter() - started >= 0.15


# ---- the log -----------------------------------------------------------------------------------


async def test_log_and_reset_over_http(url: str, oai: openai.OpenAI, app: Any) -> None:
    await asyncio.to_thread(oai.chat.completions.create, model=CHAT_MODEL, messages=user("[[sim input=3]]"))
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/_sim/log") as response:
            records = await response.json()
        assert len(records) == 1
        assert records[0]["path"] == "/v1/chat/completions"
        assert records[0]["reported_usage"]["prompt_tokens"] == 3
        assert records[0]["headers"]["authorization"] == "Bearer sk-test"
        async with session.post(url + "/_sim/reset") as response:
            assert await response.json() == {"cleared": 1}
    assert app.log.count() == 0  # control requests are not logged


def test_log_is_bounded_and_counts_by_path() -> None:
    log = SimulatorLog(max_records=3)
    for path in ["/a", "/b", "/a", "/a", "/b"]:
        log.append(RequestRecord(path, "POST", {"X-Key": "v"}))
    assert [record.path for record in log.records] == ["/a", "/a", "/b"]
    assert log.records() == log.records  # readable either way
    assert (log.count(), log.count("/a"), log.count("/c")) == (3, 2, 0)
    assert log.last is not None and log.last.headers == {"x-key": "v"}
    assert log.clear() == 3 and log.count() == 0


def test_each_app_has_its_own_log() -> None:
    shared = SimulatorLog()
    assert create_simulator_app(shared).log is shared
    assert create_simulator_app().log is not create_simulator_app().log


# ---- serve_in_thread ---------------------------------------------------------------------------


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_serve_in_thread_runs_any_asgi_app() -> None:
    with serve_in_thread(hello_app, lifespan="off") as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        async with aiohttp.ClientSession() as session, session.get(server.url) as response:
            assert await response.text() == "hello"
    assert not server.is_running
    server.stop()  # idempotent


def test_stop_is_quick_even_with_a_stream_in_flight() -> None:
    server = serve_in_thread(create_simulator_app())
    done = threading.Event()

    def slow_stream() -> None:
        try:
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client:
                stream = client.chat.completions.create(
                    model=CHAT_MODEL, messages=user("[[sim chunks=100 chunk_delay_ms=100]]"), stream=True
                )
                for _ in stream:
                    pass
        except (openai.APIError, httpx2.TransportError):
            pass  # the server going away mid-stream is the point
        finally:
            done.set()

    client_thread = threading.Thread(target=slow_stream)
    client_thread.start()
    time.sleep(0.2)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 2.5
    assert done.wait(2)
    client_thread.join(2)

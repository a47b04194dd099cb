"""Pure parsing in spendgate.usage: SSE splitting, provider usage shapes, stream observers,
estimates. No I/O: every input is a literal built here."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import orjson
import pytest

from spendgate.usage import (
    ChatStreamObserver,
    MessagesStreamObserver,
    ResponsesStreamObserver,
    SSESplitter,
    Unparsed,
    Usage,
    anthropic_response_usage,
    anthropic_usage,
    estimate_input_tokens,
    event_fields,
    openai_response_usage,
    openai_usage,
    tokens_for_chars,
)
from spendgate.usage.bounds import (
    MAX_EVENT_COST_USD,
    MAX_INPUT_TOKENS,
    MAX_OUTPUT_TOKENS,
    bounded_cost,
    bounded_usage,
    untrusted,
)
from spendgate.usage.estimate import text_chars


def sse(payload: object, event: str | None = None, sep: bytes = b"\n") -> bytes:
    """One SSE event; ``payload`` is JSON-encoded unless it is already bytes."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    head = b"event: " + event.encode() + sep if event else b""
    return head + b"data: " + data + sep + sep


def split_all(stream: bytes, chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    splitter = SSESplitter()
    events: list[bytes] = []
    for chunk in chunks:
        events.extend(splitter.feed(chunk))
    assert b"".join(chunks) == stream
    return events, splitter.tail()


def random_chunks(stream: bytes, rng: random.Random) -> list[bytes]:
    chunks, i = [], 0
    while i < len(stream):
        n = rng.randint(1, 17)
        chunks.append(stream[i : i + n])
        i += n
    return chunks


# --- SSESplitter ------------------------------------------------------------------------
LF_STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b": a comment line\n\n"
    b"data: first line\ndata: second line\n\n"
    b"data: [DONE]\n\n"
)
CRLF_STREAM = LF_STREAM.replace(b"\n", b"\r\n")
CR_STREAM = LF_STREAM.replace(b"\n", b"\r")


@pytest.mark.parametrize("stream", [LF_STREAM, CRLF_STREAM, CR_STREAM], ids=["lf", "crlf", "cr"])
def test_splitter_same_events_whatever_the_chunking(stream: bytes) -> None:
    whole, tail = split_all(stream, [stream])
    assert len(whole) == 4
    assert b"".join(whole) == stream  # separators kept, nothing lost or duplicated
    assert tail == b""

    byte_by_byte, tail = split_all(stream, [stream[i : i + 1] for i in range(len(stream))])
    assert byte_by_byte == whole
    assert tail == b""

    rng = random.Random(1234)
    for _ in range(50):
        events, tail = split_all(stream, random_chunks(stream, rng))
        assert events == whole
        assert tail == b""


def test_splitter_event_boundaries_and_fields() -> None:
    events, _ = split_all(CRLF_STREAM, [CRLF_STREAM])
    assert events[0] == b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    assert [event_fields(e) for e in events] == [
        (b"message_start", b'{"a": 1}'),
        (None, None),  # a comment only: no data
        (None, b"first line\nsecond line"),
        (None, b"[DONE]"),
    ]


def test_splitter_mixed_line_endings_end_events() -> None:
    # A line may end in LF and the blank line in CRLF (or the other way round).
    stream = b"data: a\n\r\ndata: b\r\n\ndata: c\n\n"
    events, tail = split_all(stream, [stream])
    assert [event_fields(e)[1] for e in events] == [b"a", b"b", b"c"]
    assert tail == b""
    assert split_all(stream, [stream[i : i + 1] for i in range(len(stream))])[0] == events


def test_splitter_tail_after_cut_mid_event() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: one\n\ndata: tw") == [b"data: one\n\n"]
    assert splitter.tail() == b"data: tw"
    assert splitter.feed(b"o\n") == []
    assert splitter.tail() == b"data: two\n"
    assert splitter.feed(b"\ndata: thr") == [b"data: two\n\n"]
    assert splitter.tail() == b"data: thr"
    # What a relay does with the tail of a cut stream: it still parses.
    assert event_fields(splitter.tail()) == (None, b"thr")


def test_splitter_many_events_in_one_chunk_and_empty_chunks() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"") == []
    assert splitter.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n") == [
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"data: 3\n\n",
    ]
    assert splitter.feed(b"") == []
    assert splitter.tail() == b""


def test_splitter_passes_an_oversized_event_through_unparsed_and_resumes_after_it() -> None:
    huge = b"data: " + b"x" * 5000  # no newline for a long while
    stream = b"data: 1\n\n" + huge + b"\n\ndata: 2\n\n" + b"data: 3\n\n"
    for size in (1, 7, 100, 4096, len(stream)):
        splitter = SSESplitter(max_event_bytes=1000)
        out = []
        for i in range(0, len(stream), size):
            out.extend(splitter.feed(stream[i : i + size]))
        assert b"".join(out) == stream, size  # every byte goes on, in order, once
        parsed = [piece for piece in out if not isinstance(piece, Unparsed)]
        assert parsed == [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"], size
        unparsed = b"".join(piece for piece in out if isinstance(piece, Unparsed))
        assert unparsed == huge + b"\n\n", size
        assert splitter.unparsed_bytes == len(unparsed)
        assert splitter.tail() == b""


def test_splitter_never_holds_more_than_its_bound() -> None:
    splitter = SSESplitter(max_event_bytes=1000)
    held = 0
    for _ in range(2000):  # 2 MB of one line, in 1 KB chunks
        out = splitter.feed(b"y" * 1000)
        held = max(held, len(splitter.tail()))
        assert all(isinstance(piece, Unparsed) for piece in out)
    assert held <= 2000  # the bound, plus at most the chunk that crossed it
    assert splitter.unparsed_bytes == 2_000_000
    assert splitter.feed(b"\r\n\r\ndata: z\r\n\r\n") == [Unparsed(b"\r\n\r\n"), b"data: z\r\n\r\n"]


def test_splitter_separator_split_across_the_end_of_an_oversized_event() -> None:
    splitter = SSESplitter(max_event_bytes=10)
    out = splitter.feed(b"data: " + b"a" * 20 + b"\r\n\r")
    assert out == [Unparsed(b"data: " + b"a" * 20 + b"\r\n\r")]
    assert splitter.feed(b"\ndata: b\n\n") == [Unparsed(b"\n"), b"data: b\n\n"]


# --- event_fields ----------------------------------------------------------------------
def test_event_fields_name_and_multiline_data() -> None:
    raw = b'event: content_block_delta\ndata: {"x":\ndata:  1}\nid: 7\n\n'
    # one leading space is stripped after "data:", the rest is kept
    assert event_fields(raw) == (b"content_block_delta", b'{"x":\n 1}')
    assert event_fields(b"data:no-space\n\n") == (None, b"no-space")
    assert event_fields(b"data:\n\n") == (None, b"")
    assert event_fields(b"event: ping\n\n") == (b"ping", None)
    assert event_fields(b"event:ping\r\ndata: {}\r\n\r\n") == (b"ping", b"{}")


# --- openai_usage -----------------------------------------------------------------------
def test_openai_chat_usage_with_details() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
        }
    )
    assert usage == Usage(input_tokens=1200, cached_input_tokens=1024, output_tokens=300, reasoning_tokens=256)
    assert usage.uncached_input_tokens == 176
    assert usage.total_tokens == 1500


def test_openai_embeddings_usage() -> None:
    assert openai_usage({"prompt_tokens": 8, "total_tokens": 8}) == Usage(input_tokens=8)


def test_openai_responses_api_usage() -> None:
    usage = openai_usage(
        {
            "input_tokens": 2000,
            "input_tokens_details": {"cached_tokens": 1536},
            "output_tokens": 900,
            "output_tokens_details": {"reasoning_tokens": 640},
            "total_tokens": 2900,
        }
    )
    assert usage == Usage(input_tokens=2000, cached_input_tokens=1536, output_tokens=900, reasoning_tokens=640)


def reasons(usage: Usage | None) -> list[tuple[str, str]]:
    return [(a.field, a.reason) for a in usage.anomalies] if usage is not None else []


def counts(usage: Usage | None) -> Usage | None:
    return dataclasses.replace(usage, anomalies=()) if usage is not None else None


@pytest.mark.parametrize(
    ("raw", "expected", "flagged"),
    [
        (None, None, []),
        ("usage", None, []),
        ([1, 2], None, []),
        ({}, None, []),
        ({"total_tokens": 5}, None, []),
        (
            {"prompt_tokens": -5, "completion_tokens": True},
            Usage(),
            [("prompt_tokens", "negative"), ("completion_tokens", "not_an_integer")],
        ),
        (
            {"prompt_tokens": "10", "completion_tokens": 2.5},
            Usage(),
            [("prompt_tokens", "not_an_integer"), ("completion_tokens", "not_an_integer")],
        ),
        ({"prompt_tokens": 10, "completion_tokens": None}, Usage(input_tokens=10), []),
        (
            {"prompt_tokens": 10, "prompt_tokens_details": None, "completion_tokens_details": None},
            Usage(input_tokens=10),
            [],
        ),
        (
            {"prompt_tokens": 10, "prompt_tokens_details": "x", "completion_tokens_details": [1]},
            Usage(input_tokens=10),
            [],
        ),
        (
            {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": False}},
            Usage(input_tokens=10),
            [("prompt_tokens_details.cached_tokens", "not_an_integer")],
        ),
        (
            {"input_tokens": 7, "input_tokens_details": [], "output_tokens": -1, "output_tokens_details": 3},
            Usage(input_tokens=7),
            [("output_tokens", "negative")],
        ),
    ],
)
def test_openai_usage_malformed_values_count_zero_and_are_flagged(
    raw: object, expected: Usage | None, flagged: list[tuple[str, str]]
) -> None:
    usage = openai_usage(raw)
    assert counts(usage) == expected
    assert reasons(usage) == flagged


@pytest.mark.parametrize("absurd", [10**15, 10**19, 2**64 - 1, 1.8446744073709552e19, float("inf")])
def test_openai_usage_absurd_counts_are_bounded_and_keep_the_reported_figure(absurd: object) -> None:
    usage = openai_usage(
        {"prompt_tokens": absurd, "completion_tokens": absurd, "completion_tokens_details": {"reasoning_tokens": 3}}
    )
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        MAX_INPUT_TOKENS,
        MAX_OUTPUT_TOKENS,
        3,
    )
    assert reasons(usage) == [("prompt_tokens", "out_of_range"), ("completion_tokens", "out_of_range")]
    assert usage.anomalies[0].reported == (str(absurd) if isinstance(absurd, int) else repr(absurd))
    assert untrusted(usage)


def test_usage_at_the_ceilings_is_taken_as_reported() -> None:
    usage = openai_usage({"prompt_tokens": MAX_INPUT_TOKENS, "completion_tokens": MAX_OUTPUT_TOKENS})
    assert usage == Usage(input_tokens=MAX_INPUT_TOKENS, output_tokens=MAX_OUTPUT_TOKENS)
    assert not untrusted(usage)


def test_bounded_usage_clamps_sums_and_estimates_past_the_ceilings() -> None:
    # Anthropic's input adds three bounded parts; an estimate from a huge stream can pass too.
    big = Usage(input_tokens=3 * MAX_INPUT_TOKENS, output_tokens=MAX_OUTPUT_TOKENS + 1, cached_input_tokens=5)
    bounded = bounded_usage(big)
    assert (bounded.input_tokens, bounded.output_tokens, bounded.cached_input_tokens) == (
        MAX_INPUT_TOKENS,
        MAX_OUTPUT_TOKENS,
        5,
    )
    assert reasons(bounded) == [("input_tokens", "out_of_range"), ("output_tokens", "out_of_range")]
    sane = Usage(input_tokens=10, output_tokens=2)
    assert bounded_usage(sane) is sane


def test_bounded_cost() -> None:
    assert bounded_cost(Decimal("12.5")) == (Decimal("12.5"), None)
    cost, anomaly = bounded_cost(Decimal("25000000000.000001"))
    assert cost == MAX_EVENT_COST_USD
    assert anomaly is not None and (anomaly.reason, anomaly.reported) == ("out_of_range", "25000000000.000001")


def test_openai_response_usage_body() -> None:
    body = {"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    assert openai_response_usage(body) == (Usage(input_tokens=3, output_tokens=4), "gpt-4o-mini-2024-07-18")
    assert openai_response_usage({"model": 5}) == (None, None)
    assert openai_response_usage([]) == (None, None)


# --- anthropic_usage --------------------------------------------------------------------
def test_anthropic_input_excludes_cache_so_it_is_added() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 50,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 200,
            "output_tokens": 75,
        }
    )
    assert usage == Usage(
        input_tokens=1250,
        cached_input_tokens=1000,
        cache_write_tokens=200,
        cache_write_1h_tokens=0,
        output_tokens=75,
    )
    assert usage.uncached_input_tokens == 50


def test_anthropic_ephemeral_1h_breakdown() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 5,
        }
    )
    assert usage is not None
    assert usage.input_tokens == 310
    assert usage.cache_write_tokens == 300
    assert usage.cache_write_1h_tokens == 200
    # a breakdown that claims more 1h writes than writes is capped at the writes
    capped = anthropic_usage(
        {
            "input_tokens": 1,
            "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_1h_input_tokens": 80},
        }
    )
    assert capped is not None
    assert capped.cache_write_1h_tokens == 50


@pytest.mark.parametrize(
    ("raw", "expected", "flagged"),
    [
        (None, None, []),
        ({}, None, []),
        ({"cache_read_input_tokens": 10}, None, []),
        ({"input_tokens": None, "output_tokens": 3}, Usage(output_tokens=3), []),
        (
            {"input_tokens": -3, "output_tokens": True, "cache_read_input_tokens": "9"},
            Usage(),
            [
                ("cache_read_input_tokens", "not_an_integer"),
                ("input_tokens", "negative"),
                ("output_tokens", "not_an_integer"),
            ],
        ),
        ({"input_tokens": 4, "cache_creation": "bad"}, Usage(input_tokens=4), []),
    ],
)
def test_anthropic_usage_malformed_values_count_zero_and_are_flagged(
    raw: object, expected: Usage | None, flagged: list[tuple[str, str]]
) -> None:
    usage = anthropic_usage(raw)
    assert counts(usage) == expected
    assert reasons(usage) == flagged


def test_anthropic_usage_absurd_counts_are_bounded() -> None:
    usage = anthropic_usage({"input_tokens": 10**19, "cache_read_input_tokens": 10**15, "output_tokens": 12})
    assert usage is not None and untrusted(usage)
    assert reasons(usage) == [("cache_read_input_tokens", "out_of_range"), ("input_tokens", "out_of_range")]
    assert usage.output_tokens == 12


def test_anthropic_response_usage_body() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 80, "output_tokens": 9},
    }
    assert anthropic_response_usage(body) == (
        Usage(input_tokens=100, cached_input_tokens=80, output_tokens=9),
        "claude-sonnet-4-5",
    )
    assert anthropic_response_usage("nope") == (None, None)


# --- ChatStreamObserver -----------------------------------------------------------------
def chat_chunk(delta: dict | None = None, *, usage: dict | None = None, choices: list | None = None) -> dict:
    chunk: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06"}
    chunk["choices"] = choices if choices is not None else [{"index": 0, "delta": delta or {}}]
    chunk["usage"] = usage
    return chunk


USAGE_CHUNK = chat_chunk(
    choices=[],
    usage={"prompt_tokens": 11, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}},
)
CHAT_STREAM = [
    sse(chat_chunk({"role": "assistant", "content": ""})),
    sse(chat_chunk({"content": "Hello"})),
    sse(chat_chunk({"content": ", wörld"})),
    sse(
        chat_chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": '{"q": 1}'}}]})
    ),
    sse(chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]})),
    sse(chat_chunk({}, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])),
    sse(USAGE_CHUNK),
    b"data: [DONE]\n\n",
]


def test_chat_observer_strips_only_the_usage_chunk() -> None:
    observer = ChatStreamObserver(strip_usage_chunk=True)
    kept = [event for event in CHAT_STREAM if observer.observe(event)]
    assert kept == [e for e in CHAT_STREAM if e != CHAT_STREAM[6]]
    assert kept[-1] == b"data: [DONE]\n\n"
    assert observer.usage == Usage(input_tokens=11, output_tokens=7)
    assert observer.model == "gpt-4o-2024-08-06"
    assert observer.output_chars == len("Hello") + len(", wörld") + len('{"q": 1}') + len("}")


def test_chat_observer_forwards_usage_chunk_when_client_asked() -> None:
    observer = ChatStreamObserver(strip_usage_chunk=False)
    kept = [event for event in CHAT_STREAM if observer.observe(event)]
    assert kept == CHAT_STREAM
    assert observer.usage == Usage(input_tokens=11, output_tokens=7)


def test_chat_observer_finished_by_done_or_a_finish_reason_only() -> None:
    for end in (6, 7):  # [DONE] alone, or a finish_reason without [DONE], end the stream
        observer = ChatStreamObserver(strip_usage_chunk=True)
        for event in CHAT_STREAM[:5] + CHAT_STREAM[end:]:
            observer.observe(event)
        assert observer.finished
    cut = ChatStreamObserver(strip_usage_chunk=True)
    for event in CHAT_STREAM[:5]:
        cut.observe(event)
    assert not cut.finished


def test_chat_observer_keeps_usage_that_rides_on_a_content_chunk() -> None:
    # Some compatible providers put usage on the last chunk that still has choices:
    # that chunk carries content and must reach the client even when stripping.
    chunk = sse(chat_chunk({"content": "bye"}, usage={"prompt_tokens": 2, "completion_tokens": 1}))
    observer = ChatStreamObserver(strip_usage_chunk=True)
    assert observer.observe(chunk) is True
    assert observer.usage == Usage(input_tokens=2, output_tokens=1)
    assert observer.output_chars == 3


def test_chat_observer_empty_choices_without_usage_pass() -> None:
    # Azure sends a first chunk with choices == [] and prompt filter results, no usage.
    observer = ChatStreamObserver(strip_usage_chunk=True)
    assert observer.observe(sse({"choices": [], "prompt_filter_results": [], "usage": None})) is True
    assert observer.observe(b": keep-alive\n\n") is True
    assert observer.observe(b"data: not json\n\n") is True
    assert observer.observe(sse(chat_chunk({"tool_calls": 5, "content": "x"}))) is True
    assert observer.usage is None
    assert observer.output_chars == 1


def test_chat_observer_legacy_completions_text() -> None:
    observer = ChatStreamObserver(strip_usage_chunk=True)
    observer.observe(sse({"model": "gpt-3.5-turbo-instruct", "choices": [{"text": "abcdef", "index": 0}]}))
    assert observer.output_chars == 6
    assert observer.model == "gpt-3.5-turbo-instruct"


# --- ResponsesStreamObserver ------------------------------------------------------------
def responses_event(kind: str, **fields: object) -> bytes:
    return sse({"type": kind, **fields}, event=kind)


RESPONSES_USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 32},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 4},
}


@pytest.mark.parametrize("final", ["response.completed", "response.incomplete"])
def test_responses_observer_usage_from_final_event(final: str) -> None:
    observer = ResponsesStreamObserver()
    stream = [
        responses_event("response.created", response={"model": "gpt-5-mini", "usage": None}),
        responses_event("response.output_text.delta", delta="Hi "),
        responses_event("response.function_call_arguments.delta", delta="{}"),
        responses_event("response.output_text.done", text="Hi "),
        responses_event(final, response={"model": "gpt-5-mini-2025-08-07", "usage": RESPONSES_USAGE}),
    ]
    assert all(observer.observe(event) for event in stream[:-1])
    assert not observer.finished
    assert observer.observe(stream[-1])
    assert observer.finished
    assert observer.usage == Usage(input_tokens=40, cached_input_tokens=32, output_tokens=12, reasoning_tokens=4)
    assert observer.model == "gpt-5-mini-2025-08-07"
    assert observer.output_chars == 5


def test_responses_observer_without_final_event_has_no_usage() -> None:
    observer = ResponsesStreamObserver()
    observer.observe(responses_event("response.created", response={"model": "gpt-5", "usage": None}))
    observer.observe(responses_event("response.output_text.delta", delta="abc"))
    assert observer.usage is None
    assert observer.model == "gpt-5"
    assert observer.output_chars == 3


# --- MessagesStreamObserver -------------------------------------------------------------
def anthropic_stream(with_delta: bool) -> list[bytes]:
    events = [
        sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-haiku-4-5-20251001",
                    "usage": {
                        "input_tokens": 30,
                        "cache_read_input_tokens": 500,
                        "cache_creation_input_tokens": 100,
                        "output_tokens": 1,
                    },
                },
            },
            event="message_start",
        ),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "x"),
        sse({"type": "ping"}, event="ping"),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}, "x"),
        sse(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
            },
            "x",
        ),
        sse(
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "thinking_delta", "thinking": "hm"},
            },
            "x",
        ),
    ]
    if with_delta:
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 42},
                },
                event="message_delta",
            )
        )
        events.append(sse({"type": "message_stop"}, event="message_stop"))
    return events


def test_messages_observer_finished_by_the_stop_reason_or_message_stop() -> None:
    observer = MessagesStreamObserver()
    for event in anthropic_stream(with_delta=False):
        observer.observe(event)
    assert not observer.finished
    observer.observe(sse({"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 2}}))
    assert not observer.finished
    observer.observe(sse({"type": "message_stop"}, event="message_stop"))
    assert observer.finished
    with_delta = MessagesStreamObserver()
    for event in anthropic_stream(with_delta=True)[:-1]:  # message_delta, no message_stop
        with_delta.observe(event)
    assert with_delta.finished


def test_messages_observer_combines_start_and_delta() -> None:
    observer = MessagesStreamObserver()
    assert all(observer.observe(event) for event in anthropic_stream(with_delta=True))
    assert observer.usage == Usage(input_tokens=630, cached_input_tokens=500, cache_write_tokens=100, output_tokens=42)
    assert observer.partial_usage == observer.usage
    assert observer.model == "claude-haiku-4-5-20251001"
    assert observer.output_chars == len("Hello") + len('{"a"') + len("hm")


def test_messages_observer_partial_usage_when_cut_before_message_delta() -> None:
    observer = MessagesStreamObserver()
    for event in anthropic_stream(with_delta=False):
        observer.observe(event)
    assert observer.usage is None
    assert observer.partial_usage == Usage(
        input_tokens=630, cached_input_tokens=500, cache_write_tokens=100, output_tokens=1
    )


def test_messages_observer_delta_restating_input_and_null_fields() -> None:
    observer = MessagesStreamObserver()
    observer.observe(sse({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}))
    observer.observe(
        sse(
            {
                "type": "message_delta",
                "usage": {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": None},
            }
        )
    )
    assert observer.usage == Usage(input_tokens=12, output_tokens=9)


def test_messages_observer_nothing_seen() -> None:
    observer = MessagesStreamObserver()
    assert observer.observe(b"event: ping\n\n") is True
    assert observer.observe(b"data: {oops\n\n") is True
    assert observer.usage is None
    assert observer.partial_usage is None


# --- estimates --------------------------------------------------------------------------
@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (4001, 1001)])
def test_tokens_for_chars(chars: int, tokens: int) -> None:
    assert tokens_for_chars(chars) == tokens


def test_estimate_input_tokens_chat() -> None:
    body = {
        "model": "gpt-4o",  # not counted: not text the model reads
        "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "Be brief."},  # 6 + 9
            {"role": "user", "content": "What is 2+2?"},  # 4 + 12
        ],
    }
    # 31 characters -> 8 tokens, plus 4 tokens of framing per message
    assert estimate_input_tokens(body) == 8 + 2 * 4


def test_estimate_input_tokens_other_shapes() -> None:
    assert estimate_input_tokens({"model": "text-embedding-3-small", "input": ["abcd", "efghi"]}) == 3
    assert estimate_input_tokens({"prompt": "x" * 40}) == 10
    assert estimate_input_tokens({"system": "abcd", "instructions": "efgh", "messages": []}) == 2
    assert estimate_input_tokens({"model": "m"}) == 0


def test_text_chars_counts_every_string_however_deep() -> None:
    body = {
        "model": "not counted",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "u"}}],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]},
            [["nested", 7, 1.5, True]],
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "input": 42,
    }
    strings = ["user", "text", "abc", "image_url", "u", "assistant", "{}", "nested"]
    strings += ["function", "f", "object"]
    assert text_chars(body) == sum(map(len, strings))


# --- the service tier the answer reports ------------------------------------------------


def test_openai_bodies_report_the_tier_beside_usage() -> None:
    chat = {"model": "gpt-5", "service_tier": "priority", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    assert openai_response_usage(chat)[0] == Usage(input_tokens=3, output_tokens=2, service_tier="priority")
    responses = {"model": "gpt-5", "service_tier": "flex", "usage": RESPONSES_USAGE}
    usage, _ = openai_response_usage(responses)
    assert usage is not None and usage.service_tier == "flex"
    default = {**chat, "service_tier": "default"}
    assert openai_response_usage(default)[0].service_tier == "standard"  # type: ignore[union-attr]
    for odd in (None, 7, "", "not a tier!"):
        assert openai_response_usage({**chat, "service_tier": odd})[0].service_tier is None  # type: ignore[union-attr]


def test_chat_observer_takes_the_tier_from_the_chunks() -> None:
    stream = [
        sse({**chat_chunk({"content": "hi"}), "service_tier": "flex"}),
        # The usage chunk of a compatible provider that states the tier only once, earlier.
        sse(USAGE_CHUNK),
        b"data: [DONE]\n\n",
    ]
    observer = ChatStreamObserver(strip_usage_chunk=True)
    for event in stream:
        observer.observe(event)
    assert observer.usage == Usage(input_tokens=11, output_tokens=7, service_tier="flex")
    observer = ChatStreamObserver(strip_usage_chunk=True)
    observer.observe(sse({**USAGE_CHUNK, "service_tier": "priority"}))
    assert observer.usage is not None and observer.usage.service_tier == "priority"


def test_responses_observer_takes_the_tier_from_the_final_response() -> None:
    observer = ResponsesStreamObserver()
    final = {"model": "gpt-5", "service_tier": "flex", "usage": RESPONSES_USAGE}
    observer.observe(responses_event("response.completed", response=final))
    assert observer.usage is not None and observer.usage.service_tier == "flex"


def test_anthropic_reports_the_tier_in_usage() -> None:
    usage = anthropic_usage({"input_tokens": 5, "output_tokens": 1, "service_tier": "batch"})
    assert usage == Usage(input_tokens=5, output_tokens=1, service_tier="batch")
    body = {"model": "claude-haiku-4-5", "usage": {"input_tokens": 5, "output_tokens": 1, "service_tier": "priority"}}
    assert anthropic_response_usage(body)[0].service_tier == "priority"  # type: ignore[union-attr]
    observer = MessagesStreamObserver()
    start = {"input_tokens": 30, "output_tokens": 1, "service_tier": "standard"}
    observer.observe(sse({"type": "message_start", "message": {"model": "claude-haiku-4-5", "usage": start}}))
    assert observer.partial_usage is not None and observer.partial_usage.service_tier == "standard"
    observer.observe(sse({"type": "message_delta", "usage": {"output_tokens": 9}}))
    assert observer.usage == Usage(input_tokens=30, output_tokens=9, service_tier="standard")

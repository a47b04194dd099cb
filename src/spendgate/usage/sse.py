"""Server-sent events, split incrementally so a relay can forward whole events as they arrive.

The gateway never buffers a stream: it forwards each complete event as soon as its
terminating blank line has arrived, and keeps only the unfinished tail.

The tail is bounded. An upstream may send an event that never ends (a line without a
newline, hundreds of megabytes long): kept whole, it would cost its size in memory, and
searched again on every chunk, time quadratic in it. Past ``max_event_bytes`` the splitter
stops keeping the event and hands its bytes on as they come, marked :class:`Unparsed`: the
relay forwards them untouched (the client gets the stream it was sent) without looking into
them, and the request is recorded as estimated, since what it did not read may have carried
usage. Splitting resumes at the event's end. Each byte is searched once (a separator is at
most four bytes, so only the last three of the tail are searched again), so the cost is
linear in the stream whatever its shape.
"""

from __future__ import annotations

import re

# A blank line ends an event; lines may end in LF, CRLF or CR, mixed (the SSE spec). One
# pattern finds the earliest of them in a single pass (no two can match at the same place).
_SEPARATOR = re.compile(rb"\n\n|\r\n\r\n|\r\r|\n\r\n|\r\n\n")
_OVERLAP = 3  # a separator is at most 4 bytes: one may start in the last 3 of what was searched

# Larger than any event a provider sends: the biggest are whole responses repeated in a
# Responses API ``response.completed`` and base64 images of image generation (a few MiB each,
# possibly several in one response). Beyond it an event is passed through unparsed.
MAX_EVENT_BYTES = 16 * 1024 * 1024


class Unparsed(bytes):
    """Bytes of an event too large to parse: forward them, do not read them."""

    __slots__ = ()


class SSESplitter:
    """Turns arbitrary network chunks into complete raw events (separator included), and the
    bytes of oversized events into :class:`Unparsed` pieces, in stream order."""

    __slots__ = ("_buffer", "_carry", "_skipping", "max_event_bytes", "unparsed_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._skipping = False  # inside an oversized event: its bytes go out as they come
        self._carry = b""  # the last bytes passed through, where its end may have begun
        self.unparsed_bytes = 0  # bytes handed on unparsed, for the record

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._skipping:
            chunk = self._skip(chunk, out)
            if not chunk:
                return out
        buffer = self._buffer
        if buffer:
            scan_from = max(0, len(buffer) - _OVERLAP)
            buffer += chunk
            data: bytes | bytearray = buffer
        else:
            scan_from, data = 0, chunk  # the usual case: no copy until an event is cut
        start = 0
        for match in _SEPARATOR.finditer(data, scan_from):
            end = match.end()
            event = bytes(data[start:end])
            if end - start > self.max_event_bytes:  # arrived whole, but too large all the same
                self.unparsed_bytes += len(event)
                event = Unparsed(event)
            out.append(event)
            start = end
        if data is buffer:
            del buffer[:start]
        elif start < len(chunk):
            buffer += memoryview(chunk)[start:]
        if len(buffer) > self.max_event_bytes:
            self._start_skipping(out)
        return out

    def tail(self) -> bytes:
        """What arrived after the last complete event (a stream cut mid-event); never more than
        ``max_event_bytes`` (an oversized event's bytes were handed on as they came)."""
        return bytes(self._buffer)

    def _start_skipping(self, out: list[bytes]) -> None:
        held = bytes(self._buffer)
        self._buffer.clear()
        self._skipping = True
        self._carry = held[-_OVERLAP:]
        self.unparsed_bytes += len(held)
        out.append(Unparsed(held))

    def _skip(self, chunk: bytes, out: list[bytes]) -> bytes:
        """Pass on the oversized event's bytes in ``chunk``; return what follows its end."""
        carried = len(self._carry)
        match = _SEPARATOR.search(self._carry + chunk) if chunk else None
        if match is None:
            self._carry = (self._carry + chunk[-_OVERLAP:])[-_OVERLAP:]
            self.unparsed_bytes += len(chunk)
            if chunk:
                out.append(Unparsed(chunk))
            return b""
        end = match.end() - carried  # > 0: the carried bytes held no whole separator
        self._skipping, self._carry = False, b""
        self.unparsed_bytes += end
        out.append(Unparsed(chunk[:end]))
        return chunk[end:]


def event_fields(raw: bytes) -> tuple[bytes | None, bytes | None]:
    """The (event name, data) of one raw event; data lines are joined by newlines."""
    name: bytes | None = None
    data_lines: list[bytes] = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data_lines.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, (b"\n".join(data_lines) if data_lines else None)

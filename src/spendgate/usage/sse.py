"""Server-sent events, split incrementally so a relay can forward whole events as they arrive.

The gateway never buffers a stream: it forwards each complete event as soon as its
terminating blank line has arrived, and keeps only the unfinished tail.
"""

from __future__ import annotations

# A blank line ends an event; lines may end in LF, CRLF or CR, mixed (the SSE spec).
_SEPARATORS = (b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n")


class SSESplitter:
    """Turns arbitrary network chunks into complete raw events (separator included)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        while True:
            end, width = _next_separator(data, start)
            if end < 0:
                break
            events.append(data[start : end + width])
            start = end + width
        self._buffer = data[start:]
        return events

    def tail(self) -> bytes:
        """What arrived after the last complete event (a stream cut mid-event)."""
        return self._buffer


def _next_separator(data: bytes, start: int) -> tuple[int, int]:
    best, width = -1, 0
    for separator in _SEPARATORS:
        index = data.find(separator, start)
        if index >= 0 and (best < 0 or index < best):
            best, width = index, len(separator)
    return best, width


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

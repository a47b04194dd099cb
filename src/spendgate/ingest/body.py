"""Request bodies of the ingestion doors: compressed (gzip, deflate) or not, never inflated past
the gateway's body limit, so a small compressed bomb cannot take the process's memory (pure)."""

from __future__ import annotations

import zlib


class BodyTooLarge(ValueError):
    pass


class BadEncoding(ValueError):
    pass


def decoded_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``raw`` decompressed per ``Content-Encoding`` (identity, gzip, deflate), at most ``limit``
    bytes; ``BodyTooLarge`` past it, ``BadEncoding`` for an unknown coding or broken data."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise BadEncoding(f"unsupported Content-Encoding {encoding[:32]!r}: send identity, gzip or deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadEncoding(f"the {encoding} body cannot be decompressed: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the decompressed body is larger than the gateway's limit of {limit} bytes")
    if not inflater.eof:
        raise BadEncoding(f"the {encoding} body is truncated")
    return out

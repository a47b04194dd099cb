"""The floor for a Python gateway: the least a relay can do, on the same stack spendgate runs on.

    python bench/compare/passthrough.py --port 4300 --upstream http://127.0.0.1:4200

uvicorn (uvloop + httptools, one worker) in front of one pooled keep-alive aiohttp session; per
request: read the body, parse it once (orjson, to know whether a stream is asked for), POST the
same bytes upstream, relay the answer (whole, or chunk by chunk for a stream). No
authentication, no accounting: what is left is the cost of a Python hop.
"""

from __future__ import annotations

import argparse

import aiohttp
import orjson
import uvicorn

FORWARDED = (b"accept",)


class PassThrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._relay(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
                self.session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _relay(self, scope, receive, send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        stream = orjson.loads(raw).get("stream") is True
        headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-upstream"}
        for name, value in scope["headers"]:
            if name in FORWARDED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        assert self.session is not None
        async with self.session.post(self.upstream + scope["path"], data=raw, headers=headers) as response:
            content_type = response.headers.get("content-type", "application/json").encode("latin-1")
            if stream:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": [(b"content-type", content_type)],
                    }
                )
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            payload = await response.read()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:4200")
    args = parser.parse_args()
    uvicorn.run(
        PassThrough(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()

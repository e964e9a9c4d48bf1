"""Upload limits enforced on the raw request, before a byte of it is parsed or decoded."""
from __future__ import annotations

import json

from fastapi import HTTPException  # the class FastAPI passes on when a form parser meets it


class TooLarge(HTTPException):
    """The request body passed the limit (an HTTPException, so a form parser passes it on as it is)."""

    def __init__(self, max_bytes: int):
        super().__init__(413, too_large(max_bytes))


def too_large(max_bytes: int) -> str:
    """The one-line message for a body over the limit."""
    return f"upload too large: at most {max_bytes / 1e6:g} MB a request"


class UploadLimit:
    """ASGI middleware: refuse a request whose body is (or turns out to be) over max_bytes with a 413."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a chunked body that said nothing of its size
                raise TooLarge(self.max_bytes)
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted_receive, tracked_send)
        except TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        """A one-line JSON 413."""
        body = json.dumps({"error": too_large(self.max_bytes)}, separators=(",", ":")).encode()  # as every error
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

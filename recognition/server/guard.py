"""What a request passes before it reaches a route: the API token, the Host header on loopback, the upload's
size and (only if asked for) CORS; and the one-line JSON error every refusal is."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from keyface.recognition.server.limits import UploadLimit


@dataclass
class ServeConfig:
    """How the server runs: where the gallery is, who may call it, how much it accepts."""
    gallery: Path | str  # a file, or a postgresql:// URI
    token: str
    tokens_for_reads: bool  # bound beyond loopback: every API request needs the token
    max_upload_bytes: int = 20_000_000
    cors_origins: tuple[str, ...] = ()


def guard(app: FastAPI, config: ServeConfig) -> None:
    """Tokens, upload size, the Host header on loopback and (only if asked for) CORS, checked before a
    request reaches a route. Starlette runs the middleware added last first: CORS, then the rest."""
    # innermost: its size check then raises inside the route's own task, where FastAPI passes it on
    app.add_middleware(UploadLimit, max_bytes=config.max_upload_bytes)

    app.add_middleware(TokenCheck, config=config)
    if not config.tokens_for_reads:  # loopback reads need no token: refuse other host names (DNS rebinding)
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])
    if config.cors_origins:  # outermost, so that refusals carry CORS headers and preflights need no token
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"], allow_headers=["Authorization"])


class TokenCheck:
    """ASGI middleware: requests that change the gallery (and, beyond loopback, every API request) need the
    token. Plain ASGI rather than @app.middleware, which costs each request a task and a copy of its body."""

    def __init__(self, app, config: ServeConfig):
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._needs_token(scope) and not token_ok(scope, self.config.token):
            answer = json_error(401, "a valid API token is required (Authorization: Bearer TOKEN; see `keyface serve`)")
            return await answer(scope, receive, send)
        return await self.app(scope, receive, send)

    def _needs_token(self, scope) -> bool:
        path, method = scope["path"], scope["method"]
        write = method in ("POST", "PATCH", "DELETE") and path.startswith("/api/people")
        described = path in ("/api/docs", "/api/openapi.json")  # the API's description: nothing of the gallery
        return path.startswith("/api/") and not described and (write or self.config.tokens_for_reads)


def token_ok(scope, token: str) -> bool:
    """Whether the request carries the server's token (compared in constant time)."""
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def json_error(status: int, message: str) -> JSONResponse:
    """keyface's one-line JSON error."""
    return JSONResponse({"error": " ".join(str(message).split())[:500]}, status_code=status)


# what a field of the wrong kind is told, by pydantic's error type, in keyface's words
EXPECTED = {"bool_parsing": "expected true or false", "bool_type": "expected true or false",
            "int_parsing": "expected a whole number", "int_type": "expected a whole number",
            "string_type": "expected a text value", "missing": "missing",
            "json_invalid": "not valid JSON", "model_attributes_type": "expected a JSON object",
            "dict_type": "expected a JSON object"}


BODY = "the request's body"
PLACES = ("body", "query", "path", "form", "header")  # where a field came from: its name says enough


def invalid_request(error: dict) -> str:
    """One line for a request FastAPI refused (its first error, as pydantic reports it): the field, then what
    was wrong with it."""
    where = ".".join(str(p) for p in error.get("loc", ()) if p not in PLACES and not isinstance(p, int))
    said = EXPECTED.get(error.get("type"), error.get("msg", "invalid request").removeprefix("Value error, "))
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le")}
    if error.get("type") in bounds:  # a number out of its range: the range, in words
        words, key = bounds[error["type"]]
        said = f"{words} {error.get('ctx', {}).get(key)}"
    if "UploadFile" in said:  # pydantic's words for a text value where a file belongs
        said = "expected a file (a multipart file upload), not a text value"
    elif error.get("type") == "string_type" and hasattr(error.get("input"), "filename"):
        said = "expected a text value, not a file"
    elif error.get("type") in ("model_attributes_type", "dict_type", "json_invalid"):  # the one JSON body: rename's
        said += ': send {"name": "New Name"} as application/json'
    return f"{where or BODY}: {said}"


def unreadable_body(content_type: str, detail: str) -> str:
    """One line for a body the framework could not read at all (its only 400s): a form it could not parse (its
    `detail` says why), or JSON that is not UTF-8 text, said by what the route takes."""
    if content_type.lower().startswith("multipart/"):
        return f"{BODY}: not a readable multipart form ({str(detail).rstrip('.')}); send the fields as " \
               "multipart/form-data, as a browser's form or `curl -F` does"
    return f'{BODY}: not readable as JSON: send {{"name": "New Name"}} as UTF-8 application/json'

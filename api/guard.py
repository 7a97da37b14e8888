"""The API's front gate: who may send a body is decided before a single body byte is read.

A pure ASGI middleware (no ``BaseHTTPMiddleware``, which would buffer) that looks only at the
path and the headers:

* ``/v1/...`` routes need a valid ``X-API-Key`` when keys are configured: an anonymous caller
  gets 401 at once, so an unauthenticated 300 MB upload costs the server nothing.
* the Label Studio webhook needs its own shared secret (``X-Webhook-Secret``), never an API key
  (Label Studio users can read webhook headers), and is throttled.
* probes, metrics and the OpenAPI pages stay open (the Kubernetes NetworkPolicy and Ingress keep
  /metrics off the public network).

A declared ``Content-Length`` over the route's limit is refused here too, after auth. The bytes
actually streamed are counted by Starlette's ``RequestBodyLimitMiddleware``, which FastAPI applies
per route (``max_body_size`` in ``api/main.py``, from the same table), so a chunked upload without
the header is cut off at the limit as well. The multipart parser's part limit is the batch limit.
"""

from __future__ import annotations

import hmac
import json
import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from wmstudio.settings import Settings

WEBHOOK_PATH = "/v1/webhooks/label-studio"
WEBHOOK_SECRET_HEADER = "X-Webhook-Secret"
API_KEY_HEADER = "X-API-Key"


def keyed(path: str) -> bool:
    """Routes an API key protects: everything under /v1 except the webhook (its own secret)."""
    return path.startswith("/v1/") and path != WEBHOOK_PATH


def valid_key(given: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key."""
    candidate = (given or "").encode()
    return any(hmac.compare_digest(candidate, key.encode()) for key in keys)


class APIGuard:
    """Authenticate and throttle from the headers, before the application reads the body."""

    def __init__(self, app: ASGIApp, settings: Settings, body_limits: dict[str, int], default_limit: int) -> None:
        self.app = app
        self.settings = settings
        self.body_limits = body_limits
        self.default_limit = default_limit
        self.webhook_rate = parse(settings.webhook_rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        refusal = None
        keys = self.settings.api_keys
        if keyed(path) and keys and not valid_key(headers.get(API_KEY_HEADER), keys):
            refusal = (401, "unauthorized", f"a valid {API_KEY_HEADER} header is required", {})
        elif path == WEBHOOK_PATH:
            refusal = self._webhook_refusal(headers)
        if refusal is None:
            refusal = self._declared_size_refusal(path, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message, extra_headers = refusal
        await _send_error(send, status, code, message, extra_headers)

    def _declared_size_refusal(self, path: str, headers: Headers) -> tuple[int, str, str, dict[str, str]] | None:
        """A ``Content-Length`` over the route's limit: 413 in the API's JSON, nothing read.

        (Starlette would refuse it too, but with a plain-text body; bodies without the header are
        counted as they stream by the per-route limit.)
        """
        limit = self.body_limits.get(path, self.default_limit)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return 413, "request_too_large", f"the request body is over this route's {limit}-byte limit", {}
        return None

    def _webhook_refusal(self, headers: Headers) -> tuple[int, str, str, dict[str, str]] | None:
        secret = self.settings.webhook_secret
        if secret:
            given = (headers.get(WEBHOOK_SECRET_HEADER) or "").encode()
            if not hmac.compare_digest(given, secret.encode()):
                return 401, "unauthorized", f"a valid {WEBHOOK_SECRET_HEADER} header is required", {}
        elif self.settings.label_studio_configured:
            return (
                403,
                "webhook_disabled",
                "the webhook is off until WMSTUDIO_WEBHOOK_SECRET is set (then run `wmstudio queue webhook`)",
                {},
            )
        if not self.limiter.hit(self.webhook_rate, "label-studio-webhook"):
            reset, _ = self.limiter.get_window_stats(self.webhook_rate, "label-studio-webhook")
            retry = max(1, math.ceil(reset - time.time()))
            message = f"over {self.settings.webhook_rate_limit}; retry later"
            return 429, "rate_limited", message, {"retry-after": str(retry)}
        return None


async def _send_error(send: Send, status: int, code: str, message: str, extra: dict[str, str]) -> None:
    """The API's JSON error body, sent without touching the request body.

    ``connection: close``: the unread body must not be taken for the next request on the socket.
    """
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.encode(), value.encode()) for name, value in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

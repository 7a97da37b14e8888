"""Optional API-key authentication: on when ``WMSTUDIO_API_KEYS`` lists keys."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.security import APIKeyHeader

from api.errors import APIError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required when keys are configured.")


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    given = request.headers.get("X-API-Key", "")
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise APIError(401, "unauthorized", "a valid X-API-Key header is required")

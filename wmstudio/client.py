"""A small typed client of the detection API, used by the demo, the dashboard and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import httpx

from wmstudio.settings import get_settings


class APIClientError(RuntimeError):
    """The API answered with an error (``status``, ``code`` and ``message`` from its body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class APIUnavailable(RuntimeError):
    """The API could not be reached (down, wrong URL, timed out)."""


FileInput = bytes | str | Path


def _payload(data: FileInput, filename: str | None) -> tuple[str, bytes]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        return filename or path.name, path.read_bytes()
    return filename or "upload", data


class WatermarkClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        settings = get_settings()
        self.base_url = (base_url or settings.api_url).rstrip("/")
        api_key = api_key if api_key is not None else settings.client_api_key
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WatermarkClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise APIUnavailable(f"the API at {self.base_url} is not reachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise APIClientError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise APIClientError(response.status_code, "http_error", response.text[:200]) from None
        return response

    @staticmethod
    def _params(min_score: float | None, **extra: Any) -> dict:
        params = {k: v for k, v in extra.items() if v is not None}
        if min_score is not None:
            params["min_score"] = min_score
        return params

    def detect(self, image: FileInput, filename: str | None = None, min_score: float | None = None) -> dict:
        name, data = _payload(image, filename)
        files = {"file": (name, data, "application/octet-stream")}
        return self._request("POST", "/v1/detect", files=files, params=self._params(min_score)).json()

    def detect_batch(self, images: list[FileInput], min_score: float | None = None) -> list[dict]:
        files = [("files", (*_payload(image, None), "application/octet-stream")) for image in images]
        return self._request("POST", "/v1/detect/batch", files=files, params=self._params(min_score)).json()["results"]

    def overlay(
        self, image: FileInput, mode: Literal["boxes", "heatmap"] = "boxes", min_score: float | None = None
    ) -> bytes:
        name, data = _payload(image, None)
        files = {"file": (name, data, "application/octet-stream")}
        return self._request("POST", "/v1/overlay", files=files, params=self._params(min_score, mode=mode)).content

    def model(self) -> dict:
        return self._request("GET", "/v1/model").json()

    def reload(self) -> dict:
        return self._request("POST", "/v1/model/reload").json()

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

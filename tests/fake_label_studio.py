"""A few Label Studio endpoints on 127.0.0.1, for webhook tests where the real server is absent.

Serves exactly what ``LabelStudioSync.pull_task`` reads back: the project list (one project) and
single tasks (``GET /api/tasks/ID/``, 404 for a deleted one). The real-server tests are in
``tests/test_labelstudio.py``; this one runs everywhere, in milliseconds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PROJECT_ID = 7


class FakeLabelStudio:
    """``tasks``: id -> task JSON (``project`` says whose it is); ``reads`` counts task reads."""

    def __init__(self, tasks: dict[int, dict]) -> None:
        self.tasks = tasks
        self.reads: list[int] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/api/projects/":
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    title = parse_qs(url.query).get("title", [""])[0]
                    results = [{"id": PROJECT_ID, "title": title}] if page == 1 else []
                    self._json(200, {"count": 1, "next": None, "previous": None, "results": results})
                elif url.path.startswith("/api/tasks/"):
                    task_id = int(url.path.rstrip("/").rsplit("/", 1)[1])
                    fake.reads.append(task_id)
                    task = fake.tasks.get(task_id)
                    if task is None:
                        self._json(404, {"detail": "Not found."})
                    else:
                        self._json(200, task)
                else:
                    self._json(404, {"detail": "Not found."})

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@contextmanager
def fake_label_studio(tasks: dict[int, dict]) -> Iterator[FakeLabelStudio]:
    fake = FakeLabelStudio(tasks)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()

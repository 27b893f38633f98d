"""A loopback HTTP server of the Dukascopy JSON data API layout, with injectable faults (tests only).

Serves files of a directory laid out like the URL paths under ``/v1`` (``/v1/ticks/EUR-USD/2019/2/4/0``).
The ``?from=ms`` form of the current period is answered with the completed period containing ``ms``
(or ``current[path]`` when a test sets one). ``faults[path]`` is a list of what the next requests of
that path get, consumed in order:

- ``("status", code, headers)``: that status (e.g. 429 with ``{"Retry-After": "1"}``, 503);
- ``("sleep", seconds)``: answer normally after a pause (longer than the client's timeout = a timeout);
- ``("truncate",)``: the body cut in half, with a matching Content-Length (invalid JSON);
- ``("empty",)``: the empty form of the period (``"times": []``), as a throttled server does.

Every request is recorded in ``requests`` as ``(path_with_query, monotonic time)``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from lake_resources.sources.dukascopy import api_codec as codec


def _completed(path: str, from_ms: int) -> str:
    moment = datetime.fromtimestamp(from_ms / 1000, tz=timezone.utc)
    parts = path.split("/")
    if parts[0] == "ticks":
        return codec.ticks_path(unquote(parts[1]), moment)
    return codec.candles_path(parts[1], unquote(parts[2]), parts[3], moment.date())


def _empty_form(body: bytes) -> bytes:
    obj = json.loads(body)
    for key, value in list(obj.items()):
        if isinstance(value, list):
            obj[key] = []
        elif key in ("ask", "bid", "open", "high", "low", "close"):
            obj[key] = None
    return json.dumps(obj).encode()


class ApiServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.faults: dict[str, list[tuple]] = {}
        self.current: dict[str, bytes] = {}
        self.requests: list[tuple[str, float]] = []
        self.authorization: list[str | None] = []  # the Authorization header of each request
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._serve(self)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def _serve(self, handler) -> None:
        url = urlsplit(handler.path)
        rel = url.path.removeprefix("/v1/")
        asked = rel + (f"?{url.query}" if url.query else "")
        with self._lock:
            self.requests.append((asked, time.monotonic()))
            self.authorization.append(handler.headers.get("Authorization"))
            fault = self.faults.get(asked, [None]).pop(0) if self.faults.get(asked) else None
        if fault and fault[0] == "status":
            self._send(handler, fault[1], b"{}", fault[2] if len(fault) > 2 else {})
            return
        if fault and fault[0] == "sleep":
            time.sleep(fault[1])
        from_ms = parse_qs(url.query).get("from")
        if asked in self.current:
            body = self.current[asked]
        else:
            file = self.root / (_completed(rel, int(from_ms[0])) if from_ms else rel)
            if not file.is_file():
                self._send(handler, 404, b'{"error":"not found"}')
                return
            body = file.read_bytes()
        if fault and fault[0] == "truncate":
            body = body[: len(body) // 2]
        if fault and fault[0] == "empty":
            body = _empty_form(body)
        try:
            self._send(handler, 200, body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and went away
            pass

    @staticmethod
    def _send(handler, status: int, body: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

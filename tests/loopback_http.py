"""A real HTTP server on 127.0.0.1 for download tests (never the internet): fixed bytes per path, 404 elsewhere."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serves ``files`` (path -> bytes, or (bytes, content type)) and records the paths requested.

    Use as a context manager to serve; without one it only reserves a free port (see ``close``)."""

    def __init__(self, files: dict[str, bytes | tuple[bytes, str]]) -> None:
        self.requests: list[str] = []
        self.files = {k: v if isinstance(v, tuple) else (v, "application/octet-stream") for k, v in files.items()}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                if self.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body, content_type = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep pytest output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free port
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.close()

"""A loopback HTTP server for the download tests: serves a folder (``../shared/weights``) by path, and can
replace a file's bytes, answer with an HTML page, cut a transfer short, or throttle, counting each GET."""

from __future__ import annotations

import collections
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class WeightsServer:
    """``with WeightsServer(root) as s:`` serves ``root`` at ``s.url``; ``s.hits[relpath]`` counts GETs.

    ``s.replace[relpath] = (bytes, content_type)`` serves other bytes; a path in ``s.cut_short`` announces
    the full length and closes halfway; ``s.seconds_per_file`` spreads each body over that time."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.replace: dict[str, tuple[bytes, str]] = {}
        self.cut_short: set[str] = set()
        self.seconds_per_file = 0.0
        self.hits: collections.Counter = collections.Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                owner.hits[rel] += 1
                if rel in owner.replace:
                    body, content_type = owner.replace[rel]
                elif (owner.root / rel).is_file() and ".." not in rel:
                    body, content_type = (owner.root / rel).read_bytes(), "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if rel in owner.cut_short:
                    body = body[: len(body) // 2]
                pieces = 10 if owner.seconds_per_file else 1
                step = -(-len(body) // pieces)
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(owner.seconds_per_file / pieces)
                if rel in owner.cut_short:
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> WeightsServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"

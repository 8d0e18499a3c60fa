"""A local HTTP file server (loopback, free port) standing in for the data set mirrors."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.datasets.cache import RAW_CACHE


class FileServer:
    """Serves ``files[path] = bytes``; a path in ``gates`` stops after half its body until
    ``gates[path].release`` is set (``gates[path].half_sent`` tells the test it got there)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.gates: dict[str, Gate] = {}
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                gate = server.gates.get(self.path)
                if gate is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                gate.half_sent.set()
                gate.release.wait(10)
                self.wfile.write(body[len(body) // 2 :])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        for gate in self.gates.values():
            gate.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Gate:
    def __init__(self):
        self.half_sent = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.stop()


@pytest.fixture
def fresh_cache():
    """The per-process data set cache, emptied before and after the test."""
    RAW_CACHE.clear()
    yield RAW_CACHE
    RAW_CACHE.clear()

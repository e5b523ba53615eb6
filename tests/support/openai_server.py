"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (the paid API cannot run here).

It speaks ``POST /v1/chat/completions`` and ``GET /v1/models`` over real HTTP, so the code
under test goes through the real `openai` client, its retries and timeouts. A responder
decides each reply from the request body; every body received is kept in ``requests`` so
tests assert on what was sent (the primer, few-shot examples, counterexamples...).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers to one chat-completions request."""

    contents: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    status: int = 200
    message: str = ""
    hang_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, content: str | list[str], finish_reason: str = "stop") -> Reply:
        return cls(contents=[content] if isinstance(content, str) else list(content), finish_reason=finish_reason)

    @classmethod
    def error(cls, status: int, message: str = "error", *, retry_after_ms: int | None = None) -> Reply:
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        return cls(status=status, message=message, headers=headers)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(hang_seconds=seconds, contents=["(too late)"])


Responder = Callable[[dict[str, Any]], Reply]


def scripted(*replies: Reply) -> Responder:
    """Answer requests with these replies in order; the last one repeats."""
    queue = list(replies)
    lock = threading.Lock()

    def respond(_: dict[str, Any]) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


class OpenAIServer:
    """``with OpenAIServer(responder) as server: ... server.base_url ... server.requests``."""

    def __init__(self, responder: Responder, *, api_key: str | None = None) -> None:
        self.responder = responder
        self.api_key = api_key  # when set, other keys get HTTP 401 like the real API
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []
        self.auth_headers: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for body in self.requests if "messages" in body]

    def __enter__(self) -> OpenAIServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "tests"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            server.requests.append(body)
            server.request_times.append(time.monotonic())
            server.auth_headers.append(self.headers.get("authorization", ""))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            if server.api_key is not None and self.headers.get("authorization") != f"Bearer {server.api_key}":
                self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
                return
            reply = server.responder(body)
            if reply.hang_seconds:
                time.sleep(reply.hang_seconds)
            if reply.status != 200:
                self._send(reply.status, {"error": {"message": reply.message, "type": "server_error"}}, reply.headers)
                return
            self._send(200, _completion(body, reply), reply.headers)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """A chat.completion object as OpenAI returns it, with rough token counts."""
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    n = int(body.get("n", 1) or 1)
    contents = (reply.contents * n)[:n] if len(reply.contents) < n else reply.contents[:n]
    choices = [
        {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reply.finish_reason, "logprobs": None}
        for i, text in enumerate(contents)
    ]
    completion_tokens = sum(len(text.split()) for text in contents)
    return {
        "id": f"chatcmpl-test-{len(body)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }

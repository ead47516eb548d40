"""A real OpenAI-compatible HTTP server on loopback, replying from a script.

The tests drive the real `openai` client against it, so retries, timeouts, tool-call parsing and
usage accounting are exercised exactly as with a remote server, without a network.
Each script item is one HTTP reply: a completion body (see `tool_call`, `text`), or
`Status(code, headers)` for errors, or `Sleep(seconds)` to outlast the client's timeout.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)


@dataclass
class Status:
    code: int
    headers: dict = field(default_factory=dict)
    body: dict = field(default_factory=lambda: {"error": {"message": "scripted error", "type": "server_error"}})


@dataclass
class Sleep:
    seconds: float


def completion(message: dict, finish: str, prompt: int, completion_tokens: int) -> dict:
    return {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": "scripted", "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                      "total_tokens": prompt + completion_tokens}}


def tool_call(name: str, args: dict | None = None, *, raw: str | None = None, prompt: int = 1200,
              out: int = 80) -> dict:
    """One assistant reply calling one tool; `raw` sends the arguments string verbatim (e.g. bad JSON)."""
    call = {"id": f"call_{next(_ids)}", "type": "function",
            "function": {"name": name, "arguments": raw if raw is not None else json.dumps(args or {})}}
    return completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", prompt, out)


def text(content: str, prompt: int = 1000, out: int = 40) -> dict:
    return completion({"role": "assistant", "content": content}, "stop", prompt, out)


class FakeOpenAI:
    """`with FakeOpenAI([...]) as srv:` → `srv.base_url`; `srv.requests` holds every JSON body received."""

    def __init__(self, script: list):
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body,
                                           "auth": self.headers.get("authorization", "")})
                    item = outer.script.pop(0) if outer.script else Status(500, body={"error": {"message": "script exhausted"}})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    item = Status(404)
                try:
                    if isinstance(item, Sleep):
                        time.sleep(item.seconds)
                        item = text("too late")
                    code, headers, payload = ((item.code, item.headers, item.body) if isinstance(item, Status)
                                              else (200, {}, item))
                    data = json.dumps(payload).encode()
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def tool_results(self, request_index: int) -> list[str]:
        """The tool messages the agent sent in one request (what the model was told)."""
        return [m["content"] for m in self.requests[request_index]["body"]["messages"] if m["role"] == "tool"]

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

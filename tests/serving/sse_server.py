"""A local OpenAI-compatible streaming server for client tests: known timing, chosen failures.

Raw HTTP/1.1 on an ``asyncio.Protocol`` (keep-alive, chunked SSE responses, the framing vLLM's
server uses), so tests need no web framework and the server stays cheap enough that the client under
test is the bottleneck. Chunk payloads are JSON-encoded once per behaviour, not per chunk.

Every request is logged server-side (``ServedRequest``): when its body was complete, when each chunk
was handed to the socket, and how many streams were open at once. Tests compare what the client
measured against this truth.

Run in a background thread of the test process (``SseServer.start``), or as a separate process
(``python tests/serving/sse_server.py``, prints the port) with ``GET /stats`` and ``POST /reset`` to
read and clear the log, so a benchmark client never shares a GIL with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Failure = Literal["http500", "drop", "stall", "garbage", "bad_json", "no_done", "error_event"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    first_chunk_delay_s: float = 0.0
    """From the complete request to the first content chunk (the TTFT the server produces)."""
    chunk_delay_s: float = 0.0
    """Between consecutive content chunks (the ITL the server produces)."""
    chunks: int | None = None
    """Content chunks to send; None: the request's ``max_tokens``."""
    usage: bool = True
    """Send the final ``usage`` chunk when the request asks for it (``stream_options.include_usage``)."""
    text: str = "a"
    """The text of every content chunk."""
    token_id: int = 0
    """The token id reported for every chunk (``return_token_ids`` / ``return_tokens_as_token_ids``)."""
    failure: Failure | None = None
    fail_after: int = 0
    """Content chunks sent before the failure happens."""
    close_after: bool = False
    """Close the connection after the response (as a server does when its keep-alive timeout expires)."""
    drop_reused: bool = False
    """Close a kept-alive connection on its next request without answering (the keep-alive race)."""
    chunks_per_write: int = 1
    """Zero-delay mode: content chunks each stream writes per pass of the stepping loop."""


@dataclass
class ServedRequest:
    """The server's own record of one request (times are ``time.perf_counter()`` in the server)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float
    chunk_times: list[float] = field(default_factory=list)
    """When each content chunk was written to the socket (one entry per chunk, batched writes share)."""
    done_time: float | None = None
    """When the end of the stream ([DONE] or the failure) was written."""
    failure: str | None = None


def _sse(obj: Any) -> bytes:
    """One SSE event as one HTTP chunk."""
    return _chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_DONE = _chunk(b"data: [DONE]\n\n")
_END = b"0\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


class _Encoded:
    """The pre-encoded chunks of one behaviour on one endpoint."""

    def __init__(
        self, behaviour: Behaviour, chat: bool, logprobs: int, token_ids: bool, as_ids: bool
    ) -> None:
        token = f"token_id:{behaviour.token_id}" if as_ids else behaviour.text
        if chat:
            delta: dict[str, Any] = {"content": behaviour.text}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            if logprobs:
                top = [{"token": token, "logprob": -0.5 - i, "bytes": None} for i in range(logprobs)]
                choice["logprobs"] = {
                    "content": [{"token": token, "logprob": -0.5, "bytes": None, "top_logprobs": top}]
                }
            base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            role = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            self.prefix = _sse(role)
        else:
            choice = {"index": 0, "text": behaviour.text, "logprobs": None, "finish_reason": None}
            if logprobs:
                choice["logprobs"] = {
                    "tokens": [token],
                    "token_logprobs": [-0.5],
                    "top_logprobs": [
                        {
                            f"token_id:{behaviour.token_id + i}" if as_ids else f"t{i}": -0.5 - i
                            for i in range(logprobs)
                        }
                    ],
                    "text_offset": [0],
                }
            base = {"id": "cmpl-test", "object": "text_completion", "created": 0, "model": "m"}
            self.prefix = b""
        if token_ids:
            choice["token_ids"] = [behaviour.token_id]
        self.base = base
        self.content = _sse({**base, "choices": [choice]})
        last = json.loads(json.dumps(choice))
        last["finish_reason"] = "length"
        self.last = _sse({**base, "choices": [last]})

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return _sse({**self.base, "choices": [], "usage": usage})


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Token count as the tiny byte-level tokenizer sees it: ids as given, text as UTF-8 bytes."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return len(prompt)
    if isinstance(prompt, str):
        return len(prompt.encode())
    return sum(len(str(m.get("content", "")).encode()) for m in body.get("messages", []))


class _Stepper:
    """A zero-delay stream's progress, advanced by the server's single stepping task."""

    __slots__ = ("conn", "enc", "finished", "group", "n", "per_write", "sent", "stop_at", "times")

    def __init__(
        self, conn: _Connection, enc: _Encoded, n: int, stop_at: int, times: list[float], per_write: int
    ) -> None:
        self.conn, self.enc, self.n, self.stop_at, self.times = conn, enc, n, stop_at, times
        self.per_write = max(1, per_write)
        self.group = enc.content * self.per_write
        self.sent = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def step(self, now: float) -> bool:
        """Write the next chunk(s); False once ``stop_at`` chunks are out."""
        k = min(self.per_write, self.stop_at - self.sent)
        if k == self.per_write and self.sent + k < self.n:
            data = self.group
        else:
            data = b"".join(
                self.enc.last if i == self.n - 1 else self.enc.content
                for i in range(self.sent, self.sent + k)
            )
        self.times.extend([now] * k)
        self.conn.write(data)
        self.sent += k
        return self.sent < self.stop_at


class _Connection(asyncio.Protocol):
    def __init__(self, server: SseServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next_request()

    def _next_request(self) -> None:
        if self.task is not None and not self.task.done():
            return  # no pipelining: the next request is parsed when this response ends
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < head_end + 4 + length:
            return
        body = self.buffer[head_end + 4 : head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length :]
        received = time.perf_counter()
        self.task = asyncio.ensure_future(self.server._handle(self, method, path, headers, body, received))
        self.task.add_done_callback(lambda _t: self._next_request())

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


class SseServer:
    """An OpenAI-compatible streaming test server on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        behaviour: Behaviour | Callable[[dict[str, Any]], Behaviour] = Behaviour(),
        models: tuple[str, ...] = ("test-model",),
        record: bool = True,
    ) -> None:
        self.behaviour = behaviour
        self.models = models
        self.record = record
        self.requests: list[ServedRequest] = []
        self.open_streams = 0
        self.max_open_streams = 0
        self.port = 0
        self._encoded: dict[tuple, _Encoded] = {}
        self._stepping: list[_Stepper] = []
        self._stepper_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    # ---------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SseServer:
        """Serve from a daemon thread; returns once the port is bound."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._bind())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="sse-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            assert self._loop is not None
            self._loop.call_later(0.05, self._loop.stop)

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(5)

    def __enter__(self) -> SseServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), "127.0.0.1", self.port, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        self.requests = []
        self.max_open_streams = self.open_streams

    def completions(self) -> list[ServedRequest]:
        """The logged streaming requests (completions and chat), in arrival order."""
        return [r for r in self.requests if r.path.endswith("completions")]

    # ----------------------------------------------------------------------------------- handling
    async def _handle(
        self, conn: _Connection, method: str, path: str, headers: dict[str, str], raw: bytes, received: float
    ) -> None:
        if method == "GET" and path.endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "sse-test"} for m in self.models]
            return self._json(conn, 200, {"object": "list", "data": data})
        if method == "GET" and path == "/version":
            return self._json(conn, 200, {"version": "sse-test-server"})
        if method == "GET" and path == "/stats":
            return self._json(conn, 200, self.stats())
        if method == "POST" and path == "/reset":
            self.reset()
            return self._json(conn, 200, {})
        if method != "POST" or not path.endswith(("/completions", "/chat/completions")):
            return self._json(conn, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._json(conn, 400, {"error": {"message": "body is not JSON"}})
        behaviour = self.behaviour(body) if callable(self.behaviour) else self.behaviour
        served = ServedRequest(path=path, body=body, headers=headers, received=received)
        if self.record:
            self.requests.append(served)
        conn.served += 1
        if behaviour.drop_reused and conn.served > 1 and conn.transport is not None:
            served.failure = "drop_reused"
            conn.transport.close()
            return None
        if behaviour.failure == "http500":
            served.failure = "http500"
            served.done_time = time.perf_counter()
            return self._json(conn, 500, {"error": {"message": "injected server error"}})
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        try:
            await self._stream(conn, body, behaviour, served, path.endswith("/chat/completions"))
        finally:
            self.open_streams -= 1

    async def _stream(
        self, conn: _Connection, body: dict[str, Any], b: Behaviour, served: ServedRequest, chat: bool
    ) -> None:
        logprobs = body.get("top_logprobs", 0) if chat else body.get("logprobs") or 0
        if chat and not body.get("logprobs"):
            logprobs = 0
        key = (
            b,
            chat,
            int(logprobs or 0),
            bool(body.get("return_token_ids")),
            bool(body.get("return_tokens_as_token_ids")),
        )
        enc = self._encoded.get(key)
        if enc is None:
            enc = self._encoded[key] = _Encoded(b, chat, *key[2:])
        n = b.chunks if b.chunks is not None else int(body.get("max_tokens", 16))
        stop_at = b.fail_after if b.failure else n
        times = served.chunk_times
        conn.write(_SSE_HEAD + enc.prefix)
        if b.first_chunk_delay_s:
            await asyncio.sleep(b.first_chunk_delay_s)
        if b.chunk_delay_s:
            start = time.perf_counter()
            for sent in range(stop_at):
                if sent:  # an absolute schedule: timer lateness does not accumulate
                    await asyncio.sleep(max(0.0, start + sent * b.chunk_delay_s - time.perf_counter()))
                times.append(time.perf_counter())
                conn.write(enc.last if sent == n - 1 else enc.content)
        elif stop_at:
            stepper = _Stepper(conn, enc, n, stop_at, times, b.chunks_per_write)
            self._stepping.append(stepper)
            if self._stepper_task is None:
                self._stepper_task = asyncio.ensure_future(self._step_all())
            await stepper.finished
        if b.failure:
            served.failure = b.failure
            await self._fail(conn, b.failure, enc, served)
            return
        tail = b""
        if b.usage and (body.get("stream_options") or {}).get("include_usage"):
            tail += enc.usage(_prompt_tokens(body), n)
        served.done_time = time.perf_counter()
        conn.write(tail + _DONE + _END)
        if b.close_after and conn.transport is not None:
            conn.transport.close()

    async def _fail(self, conn: _Connection, failure: str, enc: _Encoded, served: ServedRequest) -> None:
        served.done_time = time.perf_counter()
        if failure == "drop":
            if conn.transport is not None:
                conn.transport.close()
        elif failure == "stall":
            await asyncio.Event().wait()  # until the client gives up and the connection is lost
        elif failure == "garbage":
            conn.write(_chunk(b"this is not an event stream\n\n") + _DONE + _END)
        elif failure == "bad_json":
            conn.write(_chunk(b'data: {"choices": [{"text": \n\n') + _DONE + _END)
        elif failure == "error_event":
            conn.write(_sse({"error": {"message": "injected mid-stream error", "code": 500}}) + _DONE + _END)
        elif failure == "no_done":
            conn.write(enc.usage(1, served.chunk_times.__len__()) + _END)

    async def _step_all(self) -> None:
        """Zero-delay streams advance together, one chunk each per loop pass, like an engine step.

        One task serves every stream (no per-chunk coroutine switch per stream), so a pass costs one
        socket write per stream; a stream whose client lags (transport paused) is skipped that pass.
        """
        active = self._stepping
        try:
            while active:
                now = time.perf_counter()
                keep = []
                wrote = False
                for s in active:
                    if s.finished.done():  # its handler was cancelled (the client went away)
                        continue
                    if s.conn.transport is None:
                        s.finished.set_result(None)
                    elif not s.conn.writable.is_set():
                        keep.append(s)
                    else:
                        wrote = True
                        if s.step(now):
                            keep.append(s)
                        else:
                            s.finished.set_result(None)
                active[:] = keep  # streams added while we slept are appended to the same list
                await asyncio.sleep(0 if wrote else 0.0005)
        finally:
            self._stepper_task = None

    def _json(self, conn: _Connection, status: int, obj: Any) -> None:
        payload = json.dumps(obj).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: keep-alive\r\n\r\n"
        )
        conn.write(head.encode() + payload)

    def stats(self) -> dict[str, Any]:
        """The log as JSON (process mode): per request its arrival, chunk times and end."""
        return {
            "max_open_streams": self.max_open_streams,
            "requests": [
                {k: v for k, v in asdict(r).items() if k not in ("headers",)} for r in self.completions()
            ],
        }


class ServerProcess:
    """The same server in a child process: its event loop never waits on the test's GIL.

    A server thread in the test process would hand the GIL back and forth with the client under test
    (up to ``sys.getswitchinterval()`` = 5 ms per hand-over), which is client-side noise a real server
    never adds. ``time.perf_counter`` is the system-wide monotonic clock on Linux and macOS, so the
    child's timestamps compare directly with the client's.
    """

    def __init__(self, behaviour: Behaviour = Behaviour(), record: bool = True) -> None:
        self.behaviour = behaviour
        self.record = record
        self.port = 0
        self._process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ServerProcess:
        import subprocess
        import sys

        command = [sys.executable, __file__, "--behaviour", json.dumps(asdict(self.behaviour))]
        if not self.record:
            command.append("--no-record")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"test server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """``max_open_streams`` and every streaming request's log (``ServedRequest`` fields as JSON)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=30) as response:
            return json.loads(response.read())

    def completions(self) -> list[ServedRequest]:
        return [ServedRequest(headers={}, **r) for r in self.stats()["requests"]]

    def reset(self) -> None:
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


def main() -> None:
    """Serve in this process until terminated; prints ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible streaming test server")
    parser.add_argument("--behaviour", default="{}", help="Behaviour fields as JSON")
    parser.add_argument("--no-record", action="store_true", help="keep no per-request log")
    args = parser.parse_args()
    server = SseServer(Behaviour(**json.loads(args.behaviour)), record=not args.no_record)

    async def serve() -> None:
        await server._bind()
        print(f"PORT {server.port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

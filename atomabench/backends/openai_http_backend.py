"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, TGI...) over streaming HTTP.

The harness is the client here, so the client must not be what it measures. The streaming requests
go over a small HTTP/1.1 client on ``asyncio.Protocol`` (one kept-alive connection per concurrency
slot, opened before the clock starts): httpx, tried first, spent most of its time in h11's per-chunk
events and in httpcore's pool scan (quadratic in open connections) and reached about half the chunk
rate of vLLM's own aiohttp client; this one parses in the ``data_received`` callback and outruns it
(docs/serving.md has the figures). httpx is used only for the untimed ``GET /models`` and ``/version``.
Request bytes are built before the clock starts; the hot path takes a ``perf_counter()`` per read, strips
the chunked framing, splits ``data:`` lines and ``json.loads`` each event. Re-tokenizing and building
records happen after the last stream ends.

Timing follows vLLM ``bench serve``: ``send_time`` right before the request is issued, one
``token_times`` entry per SSE chunk that carries non-empty text (chunks read together share their read
time), ``first_token_time`` the first of them, ``end_time`` when ``[DONE]`` arrives. Token counts come
from the server's ``usage`` block (``token_count_source="usage"``), from token ids the server returned
(``"engine"``, with option ``token_ids``) or, labelled as a fallback, from re-tokenizing the streamed
text with the local tokenizer (``"tokenizer"``).

A failed request (HTTP status, dropped connection, stall, timeout, malformed stream) becomes a record
with a one-line ``error``; ``serve`` never raises for one request's failure.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from atomabench import __version__
from atomabench.backends.base import BackendConfig, BackendInfo, HfTokenizerMethods
from atomabench.errors import UserError
from atomabench.models import DEFAULT_MODEL, materialize, resolve_model
from atomabench.records import (
    RequestRecord,
    RequestSpec,
    SamplingSettings,
    ScheduledRequest,
    TokenLogprobs,
    hash_token_ids,
)

APIS = ("completions", "chat")
PROMPT_FORMATS = ("text", "token_ids")
OPTIONS = {
    "url",
    "api",
    "tokenizer",
    "prompt_format",
    "api_key",
    "timeout_s",
    "stall_timeout_s",
    "served_model",
    "exact_lengths",
    "token_ids",
}
_ERROR_BODY_CHARS = 200


@dataclass
class _Outcome:
    """What one stream produced, gathered in the hot loop and turned into a record afterwards."""

    send_time: float = 0.0
    end_time: float = 0.0
    times: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[Any] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: str | None = None


_FRESH_S = 2.0
"""A kept-alive connection idle longer than this is replaced before the clock starts."""
_MAX_HEAD = 65536
_KEEP_ERROR_BODY = 4096


def _usable(conn: _Connection | None, now: float) -> bool:
    return conn is not None and not conn.closed and now - conn.last_used < _FRESH_S


class _Response:
    """One streamed response: HTTP framing, then SSE events, parsed as bytes arrive (the hot path).

    ``feed`` runs inside the protocol's ``data_received`` callback, so the timestamp is taken when the
    event loop hands over the bytes, before any parsing; every content event of that read gets it.
    """

    __slots__ = (
        "body",
        "chat",
        "chunk_left",
        "complete",
        "crlf",
        "done",
        "future",
        "got_bytes",
        "head",
        "keep_alive",
        "last_rx",
        "length_left",
        "mode",
        "out",
        "pending",
        "raw",
        "stale",
        "status",
        "trailer",
        "want_logprobs",
    )

    def __init__(self, out: _Outcome, chat: bool, want_logprobs: bool) -> None:
        self.out = out
        self.chat = chat
        self.want_logprobs = want_logprobs
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_rx = time.perf_counter()
        self.head = b""
        self.status = 0
        self.mode = ""  # "chunked", "length" or "close" (body runs until the server closes)
        self.keep_alive = True
        self.raw = b""  # undecoded chunked bytes
        self.chunk_left = 0
        self.crlf = False
        self.trailer = False
        self.length_left = 0
        self.body = b""  # error bodies only
        self.pending = b""  # an incomplete SSE line
        self.done = False  # saw [DONE]
        self.complete = False  # the HTTP body ended
        self.got_bytes = False
        self.stale = False

    # ---------------------------------------------------------------------------------- HTTP layer
    def feed(self, data: bytes, now: float) -> None:
        self.last_rx = now
        self.got_bytes = True
        if not self.status:
            data = self._head(data)
            if not self.status or self.future.done():
                return
        if self.mode == "chunked":
            payload = self._dechunk(data)
        elif self.mode == "length":
            payload = data[: self.length_left]
            self.length_left -= len(payload)
            self.complete = self.length_left == 0
        else:
            payload = data
        if self.future.done():
            return
        if self.status >= 300:
            self.body = (self.body + payload)[:_KEEP_ERROR_BODY]
            if self.complete:
                self.fail(f"HTTP {self.status}: {_short(self.body.decode('utf-8', 'replace'))}")
            return
        if payload:
            self._events(payload, now)
        if self.complete and not self.future.done():
            self._end(now)

    def _head(self, data: bytes) -> bytes:
        head = self.head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            if len(head) > _MAX_HEAD:
                self.fail("malformed HTTP response: no end of headers")
            return b""
        self.head = b""
        lines = head[:end].decode("latin-1").split("\r\n")
        try:
            version, code = lines[0].split(" ", 2)[:2]
            status = int(code)
        except ValueError:
            self.fail(f"malformed HTTP status line: {_short(lines[0])}")
            return b""
        rest = head[end + 4 :]
        if 100 <= status < 200:  # interim (100 Continue): the real head follows
            return self._head(rest) if rest else b""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.status = status
        connection = headers.get("connection", "")
        self.keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", ""):
            self.mode = "chunked"
        elif "content-length" in headers:
            self.mode = "length"
            self.length_left = int(headers["content-length"])
            self.complete = self.length_left == 0
        else:
            self.mode = "close"
            self.keep_alive = False
        if status < 300 and headers.get("content-encoding", "identity") != "identity":
            self.fail(f"server compressed the stream ({headers['content-encoding']}) despite identity")
        return rest

    def _dechunk(self, data: bytes) -> bytes:
        """Strip chunked transfer framing; partial chunks are fine, their payload passes on at once."""
        buf = self.raw + data if self.raw else data
        size = len(buf)
        pos = 0
        parts = []
        while pos < size:
            if self.chunk_left:
                take = min(self.chunk_left, size - pos)
                parts.append(buf[pos : pos + take])
                pos += take
                self.chunk_left -= take
                if self.chunk_left:
                    break
                self.crlf = True
            if self.crlf:
                if size - pos < 2:
                    break
                pos += 2
                self.crlf = False
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            if self.trailer:  # after the last chunk: trailer lines, then an empty line
                empty = eol == pos
                pos = eol + 2
                if empty:
                    self.complete = True
                    break
                continue
            try:
                chunk = int(buf[pos:eol].split(b";", 1)[0], 16)
            except ValueError:
                self.fail(f"malformed HTTP chunk header: {_short(repr(buf[pos:eol]))}")
                return b""
            pos = eol + 2
            if chunk == 0:
                self.trailer = True
            else:
                self.chunk_left = chunk
        self.raw = buf[pos:]
        return b"".join(parts)

    # ----------------------------------------------------------------------------------- SSE layer
    def _events(self, payload: bytes, now: float) -> None:
        out = self.out
        times = out.times
        data = self.pending + payload if self.pending else payload
        lines = data.split(b"\n")
        self.pending = lines.pop()
        loads = json.loads
        for line in lines:
            if not line or line == b"\r":
                continue
            if line[:5] != b"data:":
                if line[:1] == b":" or line.split(b":", 1)[0].strip() in (b"event", b"id", b"retry"):
                    continue
                self.fail(f"malformed SSE line after {len(times)} chunks: {_short(repr(line))}")
                return
            body = line[5:].strip()
            if body == b"[DONE]":
                self.done = True
                out.end_time = now
                continue
            try:
                event = loads(body)
                choices = event.get("choices")
            except (ValueError, AttributeError):
                self.fail(f"malformed SSE data after {len(times)} chunks: {_short(repr(body))}")
                return
            if choices:
                choice = choices[0]
                if self.chat:
                    delta = choice.get("delta")
                    text = delta.get("content") if delta else None
                else:
                    text = choice.get("text")
                if text:
                    times.append(now)
                    out.pieces.append(text)
                ids = choice.get("token_ids")
                if ids:
                    out.token_ids.extend(ids)
                if self.want_logprobs:
                    logprobs = choice.get("logprobs")
                    if logprobs:
                        out.logprobs.append(logprobs)
            elif "error" in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                self.fail(f"server error in stream after {len(times)} chunks: {_short(str(message))}")
                return
            usage = event.get("usage")
            if usage:
                out.usage = usage

    def _end(self, now: float) -> None:
        if self.pending.strip():
            self._events(b"\n", now)
        if self.future.done():
            return
        if not self.done:
            self.fail(f"stream ended without [DONE] after {len(self.out.times)} chunks")
            return
        self.future.set_result(None)

    # -------------------------------------------------------------------------------------- ending
    def fail(self, reason: str) -> None:
        if not self.future.done():
            self.out.error = reason
            self.keep_alive = False
            self.future.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        """The connection closed: the end of a read-until-close body, or a dropped stream."""
        if self.future.done():
            return
        if self.mode == "close" and self.status:
            self.complete = True
            if self.status >= 300:
                self.fail(f"HTTP {self.status}: {_short(self.body.decode('utf-8', 'replace'))}")
            else:
                self._end(time.perf_counter())
            return
        why = _short(str(exc)) if exc else "the server closed the connection"
        self.stale = not self.got_bytes
        self.fail(f"connection dropped mid-stream after {len(self.out.times)} chunks: {why}")


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection; hands received bytes straight to the current response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: _Response | None = None
        self.closed = False
        self.keep_alive = True
        self.last_used = time.perf_counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def begin(self, response: _Response, request: bytes) -> None:
        self.response = response
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        response = self.response
        if response is not None:
            response.feed(data, now)
            if response.future.done():
                self.response = None
                self.last_used = now
                self.keep_alive = response.keep_alive and response.complete and not response.raw
        else:  # bytes nobody asked for: the connection is out of step, never reuse it
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response.lost(exc)
            self.response = None

    @property
    def reusable(self) -> bool:
        return not self.closed and self.response is None and self.keep_alive

    def close(self) -> None:
        """Close without reporting to the current response: the caller has already decided its fate."""
        self.closed = True
        self.response = None
        if self.transport is not None:
            self.transport.close()


class OpenAIHttpBackend(HfTokenizerMethods):
    """A streaming client for ``/v1/completions`` or ``/v1/chat/completions`` of a running server."""

    def __init__(self, config: BackendConfig) -> None:
        options = dict(config.options)
        unknown = set(options) - OPTIONS
        if unknown:
            raise UserError(f"unknown openai-http option(s): {', '.join(sorted(unknown))}", field="options")
        url = options.get("url")
        if not url:
            raise UserError(
                "the openai-http backend needs the server's base URL, e.g. --url http://127.0.0.1:8000/v1",
                field="url",
            )
        self.config = config
        self.url = str(url).rstrip("/")
        self.api = str(options.get("api", "completions"))
        if self.api not in APIS:
            raise UserError(f"unknown api {self.api!r}; choose one of {', '.join(APIS)}", field="api")
        self.prompt_format = str(options.get("prompt_format", "text"))
        if self.prompt_format not in PROMPT_FORMATS:
            raise UserError(
                f"unknown prompt_format {self.prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}",
                field="prompt_format",
            )
        if self.prompt_format == "token_ids" and self.api == "chat":
            raise UserError("prompt_format token_ids needs api completions", field="prompt_format")
        self.tokenizer_name = str(options.get("tokenizer", DEFAULT_MODEL))
        self.tokenizer_spec = resolve_model(self.tokenizer_name)  # fails fast on a bad path
        self.api_key = options.get("api_key") or os.environ.get("OPENAI_API_KEY")
        self.timeout_s = _positive(options, "timeout_s", 600.0)
        self.stall_timeout_s = _positive(options, "stall_timeout_s", 60.0)
        self.served_model = str(options.get("served_model") or config.model)
        self.exact_lengths = _flag(options, "exact_lengths", True)
        self.token_ids = _flag(options, "token_ids", False)
        self.endpoint = (
            f"{self.url}/completions" if self.api == "completions" else f"{self.url}/chat/completions"
        )
        self.tokenizer: Any = None
        self.info: BackendInfo | None = None
        self._runner: asyncio.Runner | None = None
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"url must be http(s)://host[:port]/path, got {self.url!r}", field="url")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._path = urlsplit(self.endpoint).path or "/"
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._idle: list[_Connection | None] = []  # one per concurrency slot, most recently used last

    # ------------------------------------------------------------------------------------------ load
    def load(self) -> BackendInfo:
        import httpx
        from transformers import AutoTokenizer

        source = self.tokenizer_spec.location or self.tokenizer_spec.name
        try:
            folder = materialize(self.tokenizer_spec)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, KeyError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot load this tokenizer: {message}", path=source, field="tokenizer") from exc
        headers = self._headers()
        try:
            response = httpx.get(f"{self.url}/models", headers=headers, timeout=10.0, trust_env=False)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach the server at {self.url}/models: {exc}", field="url") from exc
        if response.status_code >= 400:
            raise UserError(
                f"GET {self.url}/models answered HTTP {response.status_code}: {_short(response.text)}",
                field="url",
            )
        try:
            server_models = [str(m.get("id")) for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            server_models = []
        self._check_served_model(server_models)
        self._runner = asyncio.Runner()
        self.info = BackendInfo(
            kind="openai-http",
            engine_version=self._server_version(headers),
            model=self.served_model,
            model_path=None,
            model_source="openai-http",
            dtype=self.config.dtype,
            device="remote",
            settings={
                "url": self.url,
                "api": self.api,
                "tokenizer": self.tokenizer_name,
                "tokenizer_path": str(folder),
                "served_model": self.served_model,
                "server_models": server_models,
                "prompt_format": self.prompt_format,
                "exact_lengths": self.exact_lengths,
                "token_ids": self.token_ids,
                "timeout_s": self.timeout_s,
                "stall_timeout_s": self.stall_timeout_s,
                "client": "atomabench asyncio HTTP/1.1",
            },
        )
        return self.info

    def _check_served_model(self, server_models: list[str]) -> None:
        """Refuse before the clock starts a model name the server does not serve (every request would
        fail with 404); with the default name and a server serving one model, take that one."""
        if not server_models or self.served_model in server_models:
            return
        if self.served_model == DEFAULT_MODEL and len(server_models) == 1:
            self.served_model = server_models[0]
            return
        raise UserError(
            f"the server does not serve {self.served_model!r}; it serves {', '.join(server_models)} "
            "(pass one with --model)",
            field="model",
        )

    def _server_version(self, headers: dict[str, str]) -> str:
        """vLLM and SGLang answer ``GET /version`` at the server root; other servers stay "unknown"."""
        import httpx

        root = self.url.removesuffix("/v1")
        try:
            response = httpx.get(f"{root}/version", headers=headers, timeout=5.0, trust_env=False)
            if response.status_code == 200:
                version = response.json().get("version")
                if version:
                    return str(version)
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        return "unknown"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    # ------------------------------------------------------------------------------------- requests
    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        """One batch = all requests sent at once, none held back."""
        schedule = [ScheduledRequest(spec=r, arrival_s=0.0) for r in requests]
        records = self.serve(schedule, sampling, max_concurrency=max(1, len(requests)))
        return [
            r.model_copy(update={"batch_size": len(requests), "batch_position": i})
            for i, r in enumerate(records)
        ]

    def serve(
        self,
        schedule: Sequence[ScheduledRequest],
        sampling: SamplingSettings,
        *,
        max_concurrency: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> list[RequestRecord]:
        if not schedule:
            return []
        if self._runner is None:
            raise RuntimeError("OpenAIHttpBackend.serve called before load()")
        bodies = [self._body(item.spec, sampling) for item in schedule]
        # A full collection of a large heap (torch, transformers, pandas) pauses the loop for tens of
        # ms, which would land in some request's timestamps. Freeze what exists now and collect nothing
        # while streams are open (the hot path makes almost no cyclic garbage), as vLLM's bench client
        # freezes its heap too. (No gc.collect() first: in a big process that alone takes ~0.5 s.)
        gc.freeze()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            outcomes = self._runner.run(self._serve(schedule, bodies, max_concurrency, on_done))
        finally:
            if was_enabled:
                gc.enable()
            gc.unfreeze()
        return self._records(schedule, outcomes, sampling)

    def _body(self, spec: RequestSpec, sampling: SamplingSettings) -> bytes:
        body: dict[str, Any] = {"model": self.served_model}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": self._prompt_text(spec)}]
        elif self.prompt_format == "token_ids":
            body["prompt"] = list(spec.prompt_token_ids)
        else:
            body["prompt"] = self._prompt_text(spec)
        body["max_tokens"] = spec.max_tokens
        body["temperature"] = sampling.temperature
        body["top_p"] = sampling.top_p
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        if not sampling.greedy:
            body["seed"] = sampling.seed
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if spec.ignore_eos and self.exact_lengths:
            body["ignore_eos"] = True
            body["min_tokens"] = spec.max_tokens
        if sampling.logprobs:
            if self.api == "chat":
                body["logprobs"] = True
                body["top_logprobs"] = sampling.logprobs
            else:
                body["logprobs"] = sampling.logprobs
            if self.token_ids:
                body["return_tokens_as_token_ids"] = True
        if self.token_ids:
            body["return_token_ids"] = True
        return json.dumps(body, separators=(",", ":")).encode()

    def _prompt_text(self, spec: RequestSpec) -> str:
        if spec.prompt_text is not None:
            return spec.prompt_text
        return self.tokenizer.decode(list(spec.prompt_token_ids), skip_special_tokens=False)

    async def _serve(
        self,
        schedule: Sequence[ScheduledRequest],
        bodies: list[bytes],
        max_concurrency: int | None,
        on_done: Callable[[], None] | None = None,
    ) -> list[_Outcome]:
        limit = min(max_concurrency or len(schedule), len(schedule))
        while len(self._idle) < limit:
            self._idle.insert(0, None)
        await self._open_connections(limit)
        requests = [self._request_head(len(body)) + body for body in bodies]  # framed before the clock
        semaphore = asyncio.Semaphore(limit)
        start = time.perf_counter()
        tasks = [
            self._one(request, start + item.arrival_s, semaphore)
            for request, item in zip(requests, schedule, strict=True)
        ]
        if on_done is not None:
            tasks = [_then(task, on_done) for task in tasks]
        return list(await asyncio.gather(*tasks))

    def _request_head(self, length: int) -> bytes:
        lines = [
            f"POST {self._path} HTTP/1.1",
            f"host: {self._host_header}",
            "content-type: application/json",
            f"content-length: {length}",
            "accept: text/event-stream",
            "accept-encoding: identity",
            f"user-agent: atomabench/{__version__}",
        ]
        if self.api_key:
            lines.append(f"authorization: Bearer {self.api_key}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _open_connections(self, count: int) -> None:
        """Before the clock starts, give each of the ``count`` next slots an open, recently used connection.

        A TCP (and TLS) handshake inside the timed window would land in the first requests' TTFT and
        measure the client instead of the server. Connections idle for longer than ``_FRESH_S`` are
        replaced, since servers close idle keep-alive connections (uvicorn after 5 s).
        """
        now = time.perf_counter()
        slots = range(len(self._idle) - count, len(self._idle))
        stale = [i for i in slots if not _usable(self._idle[i], now)]
        for i in stale:
            if self._idle[i] is not None:
                self._idle[i].close()
        opened = await asyncio.gather(*(self._connect() for _ in stale), return_exceptions=True)
        for i, conn in zip(stale, opened, strict=True):
            self._idle[i] = conn if isinstance(conn, _Connection) else None  # failures retry when timed

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection,
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
        )
        return conn

    async def _one(self, request: bytes, due: float, semaphore: asyncio.Semaphore) -> _Outcome:
        while (wait := due - time.perf_counter()) > 0:  # sleep may return a hair early; never send early
            await asyncio.sleep(wait)
        async with semaphore:
            slot = [self._idle.pop()]  # one slot per free semaphore permit, so never empty
            out = _Outcome()
            out.send_time = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._exchange(slot, request, out)
            except TimeoutError:
                out.error = f"timeout: request took longer than timeout_s={self.timeout_s:g} s"
            except OSError as exc:  # refused, unreachable, reset while connecting, TLS
                out.error = f"connection failed: {_short(str(exc) or type(exc).__name__)}"
            except Exception as exc:  # whatever else happens must still end as a failed record
                out.error = f"{type(exc).__name__}: {_short(str(exc))}"
            conn = slot[0]
            if out.error is not None:
                out.end_time = time.perf_counter()
            if conn is not None and (out.error is not None or not conn.reusable):
                conn.close()  # a connection that failed a request, or that the server ends, is not reused
                conn = None
            self._idle.append(conn)
            return out

    async def _exchange(self, slot: list[_Connection | None], request: bytes, out: _Outcome) -> None:
        """Send ``request`` on the slot's connection (opening one if needed) and wait for the stream end."""
        chat = self.api == "chat"
        want_logprobs = b'"logprobs"' in request
        retried = False
        while True:
            conn = slot[0]
            fresh = conn is None or conn.closed
            if fresh:
                slot[0] = conn = await self._connect()
            response = _Response(out, chat, want_logprobs)
            conn.begin(response, request)
            await self._await_end(conn, response)
            if response.stale and not fresh and not retried:
                # The server had closed this kept-alive connection before reading the request (it
                # answered nothing): the standard single retry on a new connection.
                retried = True
                slot[0] = None
                out.error = None
                continue
            return

    async def _await_end(self, conn: _Connection, response: _Response) -> None:
        """Wait for the stream to end, failing it when no bytes arrive for ``stall_timeout_s``."""
        stall = self.stall_timeout_s
        future = response.future
        while not future.done():
            wait = response.last_rx + stall - time.perf_counter()
            if wait <= 0:
                response.fail(
                    f"stall: no data for stall_timeout_s={stall:g} s after {len(response.out.times)} chunks"
                )
                conn.close()
                break
            await asyncio.wait((future,), timeout=wait)

    # -------------------------------------------------------------------------------------- records
    def _records(
        self, schedule: Sequence[ScheduledRequest], outcomes: list[_Outcome], sampling: SamplingSettings
    ) -> list[RequestRecord]:
        """Turn raw outcomes into records, after every stream ended (tokenizing is not timed)."""
        texts = ["".join(o.pieces) for o in outcomes]
        need = [i for i, o in enumerate(outcomes) if o.error is None and not o.token_ids]
        local_ids: dict[int, list[int]] = {}
        if need:
            encoded = self.tokenizer([texts[i] for i in need], add_special_tokens=False)["input_ids"]
            local_ids = dict(zip(need, encoded, strict=True))
        records = []
        for i, (item, out) in enumerate(zip(schedule, outcomes, strict=True)):
            spec = item.spec
            if out.error is not None:
                records.append(
                    RequestRecord(
                        request_id=spec.request_id,
                        scenario=spec.scenario,
                        prompt_tokens=spec.prompt_tokens,
                        output_tokens=0,
                        send_time=out.send_time,
                        first_token_time=None,
                        end_time=out.end_time,
                        error=out.error,
                    )
                )
                continue
            usage = out.usage or {}
            server_ids = tuple(out.token_ids)
            if server_ids:
                count, source = len(server_ids), "engine"
                output_hash = hash_token_ids(server_ids)
            else:
                ids = local_ids[i]
                output_hash = hash_token_ids(ids)
                if isinstance(usage.get("completion_tokens"), int):
                    count, source = usage["completion_tokens"], "usage"
                else:
                    count, source = len(ids), "tokenizer"
            prompt_tokens = usage.get("prompt_tokens")
            records.append(
                RequestRecord(
                    request_id=spec.request_id,
                    scenario=spec.scenario,
                    prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else spec.prompt_tokens,
                    output_tokens=count,
                    send_time=out.send_time,
                    first_token_time=out.times[0] if out.times else None,
                    token_times=tuple(out.times),
                    end_time=out.end_time,
                    output_token_ids=server_ids,
                    output_hash=output_hash,
                    logprobs=self._logprobs(out.logprobs) if sampling.logprobs else None,
                    token_count_source=source,
                )
            )
        return records

    def _logprobs(self, chunks: list[Any]) -> tuple[TokenLogprobs, ...] | None:
        """Per-token logprobs when the server named its tokens by id (``token_id:N``); else None."""
        if not chunks:
            return None
        steps: list[TokenLogprobs] = []
        try:
            for lp in chunks:
                if self.api == "chat":
                    for entry in lp.get("content") or ():
                        top = tuple(
                            (_token_id(t["token"]), float(t["logprob"])) for t in entry["top_logprobs"]
                        )
                        steps.append(TokenLogprobs(logprob=float(entry["logprob"]), top=top))
                else:
                    for chosen, alternatives in zip(lp["token_logprobs"], lp["top_logprobs"], strict=True):
                        top = tuple((_token_id(t), float(v)) for t, v in (alternatives or {}).items())
                        steps.append(TokenLogprobs(logprob=float(chosen), top=top))
        except (KeyError, TypeError, ValueError):
            return None  # token strings without ids (or an unexpected shape): nothing we can check
        return tuple(steps)

    # ------------------------------------------------------------------------------------ the rest
    def score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], top_k: int = 5
    ) -> list[TokenLogprobs]:
        raise NotImplementedError("openai-http cannot teacher-force claimed tokens through the OpenAI API")

    def peak_device_memory(self) -> tuple[int | None, str | None]:
        return None, None  # the server's memory is not visible from the client

    def reset_peak_device_memory(self) -> None:
        pass

    def close(self) -> None:
        if self._runner is not None:
            for conn in self._idle:
                if conn is not None:
                    conn.close()
            self._runner.run(asyncio.sleep(0))  # let the transports finish closing on their loop
            self._runner.close()
        self._runner = None
        self._idle = []
        self.tokenizer = None


def _token_id(token: str) -> int:
    """vLLM's ``return_tokens_as_token_ids`` form ``token_id:123``; anything else is unusable."""
    if not token.startswith("token_id:"):
        raise ValueError(token)
    return int(token[9:])


def _short(text: str) -> str:
    """The first line of ``text``, cut to a readable length."""
    first = " ".join(text.split())
    return first[:_ERROR_BODY_CHARS] + ("…" if len(first) > _ERROR_BODY_CHARS else "")


def _positive(options: dict[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number of seconds, got {value!r}", field=name) from None
    if number <= 0:
        raise UserError(f"{name} must be > 0, got {value!r}", field=name)
    return number


def _flag(options: dict[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{name} must be true or false, got {value!r}", field=name)


async def _then(outcome: Awaitable[_Outcome], callback: Callable[[], None]) -> _Outcome:
    """Await one request's outcome, then report it (for a progress display)."""
    result = await outcome
    callback()
    return result

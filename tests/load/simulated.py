"""A continuous-batching server simulated in virtual time: a ``ServingBackend`` for load tests.

It never sleeps: it computes when each request would be sent (the client's ``max_concurrency``),
when a server slot frees up (``slots`` sequences decode together), and when every token arrives
(prefill, then decode steps that slow down as more sequences share the engine). Because everything
is computed, tests can state the expected numbers exactly and sweeps finish in milliseconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from atomabench.backends import BackendConfig, BackendInfo
from atomabench.records import (
    RequestRecord,
    RequestSpec,
    SamplingSettings,
    ScheduledRequest,
    TokenLogprobs,
    hash_token_ids,
)


class SimulatedServer:
    def __init__(
        self,
        *,
        slots: int = 4,
        prefill_s: float = 0.02,
        tpot_s: float = 0.01,
        crowding: float = 0.25,
        fail_every: int = 0,
    ) -> None:
        self.config = BackendConfig(kind="simulated", model="simulated")
        self.slots, self.prefill_s, self.tpot_s, self.crowding = slots, prefill_s, tpot_s, crowding
        self.fail_every = fail_every
        self.calls: list[tuple[int, int | None]] = []
        """(requests, max_concurrency) of every serve call, for assertions."""
        self._clock = 1000.0
        self._served = 0

    def load(self) -> BackendInfo:
        return BackendInfo(
            kind="simulated", engine_version="1", model="simulated", dtype="float32", device="cpu"
        )

    def tokenize(self, text: str) -> list[int]:
        return list(text.encode())

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return bytes(token_ids).decode(errors="replace")

    def vocab_size(self) -> int:
        return 256

    def special_token_ids(self) -> set[int]:
        return set()

    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        return self.serve([ScheduledRequest(spec=r, arrival_s=0.0) for r in requests], sampling)

    def serve(
        self,
        schedule: Sequence[ScheduledRequest],
        sampling: SamplingSettings,
        *,
        max_concurrency: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> list[RequestRecord]:
        self.calls.append((len(schedule), max_concurrency))
        base = self._clock
        client_ends: list[float] = []  # requests the client has in flight
        server_free = [base] * self.slots  # when each engine slot frees up
        server_ends: list[float] = []
        records = []
        for item in schedule:
            send = base + item.arrival_s
            if max_concurrency is not None:
                while len(client_ends) >= max_concurrency:
                    send = max(send, heapq.heappop(client_ends))
            while client_ends and client_ends[0] <= send:
                heapq.heappop(client_ends)
            start = max(send, heapq.heappop(server_free))
            active = sum(1 for end in server_ends if end > start)
            gap = self.tpot_s * (1 + self.crowding * active)
            first = start + self.prefill_s
            times = tuple(first + i * gap for i in range(item.spec.max_tokens))
            end = times[-1]
            heapq.heappush(server_free, end)
            heapq.heappush(client_ends, end)
            server_ends.append(end)
            self._served += 1
            failed = self.fail_every and self._served % self.fail_every == 0
            ids = tuple(range(item.spec.max_tokens))
            records.append(
                RequestRecord(
                    request_id=item.spec.request_id,
                    scenario=item.spec.scenario,
                    prompt_tokens=item.spec.prompt_tokens,
                    output_tokens=0 if failed else len(ids),
                    send_time=send,
                    first_token_time=None if failed else first,
                    token_times=() if failed else times,
                    end_time=end,
                    error="HTTP 500: simulated failure" if failed else None,
                    output_token_ids=() if failed else ids,
                    output_hash="" if failed else hash_token_ids(ids),
                    token_count_source="usage",
                )
            )
        self._clock = max(r.end_time for r in records) + 1.0
        for _ in records:
            if on_done is not None:
                on_done()
        return records

    def score(self, prompt_token_ids, output_token_ids, top_k: int = 5) -> list[TokenLogprobs]:
        raise NotImplementedError

    def peak_device_memory(self) -> tuple[int | None, str | None]:
        return None, None

    def reset_peak_device_memory(self) -> None:
        pass

    def close(self) -> None:
        pass

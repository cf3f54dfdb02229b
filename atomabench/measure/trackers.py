"""Trackers watch a measured window and yield a small value object (optimum-benchmark's pattern).

A tracker never knows which backend ran; the device-memory reading is asked of the backend through
two callables so CUDA, MPS or nothing at all look the same here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

from atomabench.records import MemoryStats


@dataclass
class MemoryReading:
    """Filled in when the tracked block exits."""

    peak_host_rss_bytes: int = 0
    peak_device_bytes: int | None = None
    device_memory_source: str | None = None

    def stats(self) -> MemoryStats:
        return MemoryStats(
            peak_device_bytes=self.peak_device_bytes,
            peak_host_rss_bytes=self.peak_host_rss_bytes,
            device_memory_source=self.device_memory_source,
        )


class _RssSampler(threading.Thread):
    """Samples this process's RSS; a daemon so an interrupt never waits on it."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(name="atomabench-rss", daemon=True)
        self._process = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=1.0)
        return max(self.peak, self._process.memory_info().rss)


@contextmanager
def track_memory(
    reset_device_peak: Callable[[], None] | None = None,
    read_device_peak: Callable[[], tuple[int | None, str | None]] | None = None,
    interval_s: float = 0.05,
) -> Iterator[MemoryReading]:
    """Peak host RSS (sampled every ``interval_s``) and peak device memory over the block."""
    reading = MemoryReading()
    if reset_device_peak is not None:
        reset_device_peak()
    sampler = _RssSampler(interval_s)
    sampler.start()
    try:
        yield reading
    finally:
        reading.peak_host_rss_bytes = sampler.stop()
        if read_device_peak is not None:
            reading.peak_device_bytes, reading.device_memory_source = read_device_peak()

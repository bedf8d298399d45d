"""Micro-batching: an asyncio queue plus ONE worker task that decodes compatible requests together.

The worker collects requests for up to ``max_wait_s`` or until ``max_batch`` sequences, groups
them by settings that cannot share a decode (level and `Sampling.key()`), and runs ONE aggregated
generation per group in a thread, so the event loop keeps accepting requests meanwhile.

* Requests are fully validated before they are queued, so a decode should not fail; if one still
  does, the group is split in halves and each half retried (bisection), so only the request that
  fails gets the error and its neighbours are still decoded in batches.
* A request whose client left (`Job.abandon`) is skipped before its decode, and a running decode
  whose every client left is stopped at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from moalign.serve.metrics import ServeMetrics


@dataclass(frozen=True)
class Completion:
    """One generated sequence: its text, its token count (EOS included) and why it ended."""

    text: str
    tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_new_tokens reached)


StepHook = Callable[[list[int]], None]  # the tokens chosen at one step, one per batch row
RunBatch = Callable[[list[str], list[list[float]], tuple, StepHook | None], list[Completion]]


class Abandoned(Exception):
    """Raised by the step hook to stop a decode whose every client has left."""


@dataclass(eq=False)
class Job:
    """One request waiting for the batcher: formatted prompts (one row each), a (K,) weight row,
    the settings key, and the future its responses go to."""

    texts: list[str]
    weights: list[float]
    key: tuple  # requests with equal keys can share one decode
    future: asyncio.Future
    on_tokens: StepHook | None = None  # this job's rows' tokens at each step (decode thread)
    on_restart: Callable[[], None] | None = None  # its decode is retried (bisection)
    enqueued: float = field(default_factory=time.perf_counter)
    batch_size: int = 0
    started: float = 0.0
    abandoned: bool = False

    def abandon(self) -> None:
        """The client left: skip this job's decode, or stop a decode that only serves it."""
        self.abandoned = True
        if not self.future.done():
            self.future.cancel()


class MicroBatcher:
    """Collect requests for `max_wait_s` (or up to `max_batch` sequences), run one generation per
    settings group in a thread, resolve the futures."""

    def __init__(self, run_batch: RunBatch, max_batch: int, max_wait_s: float, max_queue: int,
                 metrics: ServeMetrics | None = None) -> None:
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self.metrics = metrics or ServeMetrics()
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self._held: Job | None = None  # collected but did not fit the last batch
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def depth(self) -> int:
        return self.queue.qsize() + (self._held is not None)

    def enqueue(self, job: Job) -> None:
        """Queue a job (`asyncio.QueueFull` when the queue is full: answer 503)."""
        self.queue.put_nowait(job)

    async def submit(self, job: Job) -> list[Completion]:
        """Queue a job and wait for its completions."""
        self.enqueue(job)
        return await job.future

    async def _next(self, timeout: float | None) -> Job | None:
        """The next job still wanted by its client (None when the window closes)."""
        while True:
            if self._held is not None:
                job, self._held = self._held, None
            elif timeout is None:
                job = await self.queue.get()
            elif timeout <= 0:
                try:
                    job = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    return None
            else:
                try:
                    job = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    return None
            if not job.abandoned:
                return job

    async def _collect(self) -> list[Job]:
        """The next window: first job, then more until `max_batch` sequences or the deadline."""
        first = await self._next(None)
        assert first is not None
        jobs, rows = [first], len(first.texts)
        deadline = time.perf_counter() + self.max_wait_s
        while rows < self.max_batch:
            job = await self._next(deadline - time.perf_counter())
            if job is None:
                break
            if rows + len(job.texts) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            rows += len(job.texts)
        return jobs

    async def _worker(self) -> None:
        while True:
            jobs = await self._collect()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                await self._run_group(key, group)

    def _step_hook(self, jobs: list[Job]) -> StepHook:
        spans, start = [], 0
        for job in jobs:
            spans.append((start, start + len(job.texts)))
            start += len(job.texts)

        def hook(tokens: list[int]) -> None:
            if all(job.abandoned for job in jobs):
                raise Abandoned
            for job, (a, b) in zip(jobs, spans, strict=True):
                if job.on_tokens is not None and not job.abandoned:
                    job.on_tokens(tokens[a:b])

        return hook

    async def _run_group(self, key: tuple, group: list[Job]) -> None:
        """One generation for the live jobs of the group; on failure, bisect."""
        live = [job for job in group if not job.abandoned]
        if not live:
            return
        texts = [t for job in live for t in job.texts]
        weights = [job.weights for job in live for _ in job.texts]  # (B, K) per sequence
        started = time.perf_counter()
        self.metrics.sequences.inc(len(texts))  # sent to the decoder (even if it is stopped)
        for job in live:
            if not job.started:
                self.metrics.queue_wait.observe(started - job.enqueued)
            job.batch_size, job.started = len(texts), started
        try:
            out = await asyncio.to_thread(self.run_batch, texts, weights, key,
                                          self._step_hook(live))
        except Abandoned:
            return
        except Exception as e:
            await self._on_failure(key, live, e)
            return
        self.metrics.record_batch(len(texts), time.perf_counter() - started)
        start = 0
        for job in live:
            n = len(job.texts)
            if not job.future.done():
                job.future.set_result(out[start:start + n])
            start += n

    async def _on_failure(self, key: tuple, live: list[Job], error: Exception) -> None:
        if len(live) > 1:  # bisect: the failing request is isolated in log2(n) steps
            for job in live:
                if job.on_restart is not None:
                    job.on_restart()
            mid = len(live) // 2
            await self._run_group(key, live[:mid])
            await self._run_group(key, live[mid:])
            return
        self.metrics.decode_errors.inc()
        if not live[0].future.done():
            live[0].future.set_exception(error)

"""Server-sent events of a generation, as OpenAI streams them: the text of each sequence as it is
decoded, one ``data: {chunk}`` event per increment, then ``data: [DONE]``.

The decoder calls the job's token hook once per step (in the decode thread); each sequence's
`TextStream` turns its new token into the text it adds, holding back what may still change (an
incomplete UTF-8 character, the start of a stop string). When the generation ends, the rest of
the final text is sent, so the streamed text always ends equal to the non-streamed one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from moalign.serve.batcher import Completion, Job

Chunk = Callable[[int, str | None, str | None], dict[str, Any]]  # (row, text, finish) -> chunk


class TextStream:
    """Incremental text of one sequence from its token ids."""

    def __init__(self, decode: Callable[[list[int]], str], eos: set[int],
                 stop: tuple[str, ...]) -> None:
        self.decode, self.eos, self.stop = decode, eos, stop
        self.hold = max((len(s) for s in stop), default=1) - 1  # a stop string may be starting
        self.ids: list[int] = []
        self.sent, self.ended = "", False

    def push(self, token: int) -> str:
        """The text this token adds that is safe to send now ("" if none)."""
        if self.ended:
            return ""
        if token in self.eos:
            self.ended = True
            return ""
        self.ids.append(token)
        text = self.decode(self.ids)
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if cuts:
            text, self.ended = text[:min(cuts)], True
        elif text.endswith("\ufffd"):  # an incomplete multi-byte character
            return ""
        elif self.hold:
            text = text[:max(len(text) - self.hold, 0)]
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta

    def restart(self) -> None:
        """The decode is retried from the start: already sent text is not sent again."""
        self.ids, self.ended = [], False

    def finish(self, final: str) -> str:
        """What remains to send of the final text."""
        return final[len(self.sent):] if final.startswith(self.sent) else ""


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class EventFeed:
    """Deltas from the decode thread to the event loop, in order."""

    def __init__(self, job: Job, streams: list[TextStream]) -> None:
        self.loop = asyncio.get_running_loop()
        self.pending: deque[tuple[int, str]] = deque()
        self.ready = asyncio.Event()
        self.streams = streams
        job.on_tokens = self.on_tokens
        job.on_restart = self.on_restart

    def on_tokens(self, tokens: list[int]) -> None:  # decode thread
        for row, (stream, token) in enumerate(zip(self.streams, tokens, strict=True)):
            delta = stream.push(token)
            if delta:
                self.loop.call_soon_threadsafe(self._put, row, delta)

    def on_restart(self) -> None:
        for stream in self.streams:
            stream.restart()

    def _put(self, row: int, delta: str) -> None:
        self.pending.append((row, delta))
        self.ready.set()


async def events(job: Job, feed: EventFeed, chunk: Chunk, timeout_s: float,
                 finish: Callable[[list[Completion]], list[Completion]],
                 usage: dict[str, int] | None, on_abandon: Callable[[], None],
                 first: Sequence[dict[str, Any]] = ()) -> AsyncIterator[str]:
    """The SSE body: `first` chunks, the increments, the final chunks, usage, ``[DONE]``."""
    deadline = time.monotonic() + timeout_s
    try:
        for c in first:
            yield sse(c)
        while True:
            while feed.pending:
                row, delta = feed.pending.popleft()
                yield sse(chunk(row, delta, None))
            if job.future.done() or time.monotonic() > deadline:
                break
            feed.ready.clear()
            waiter = asyncio.ensure_future(feed.ready.wait())
            await asyncio.wait({waiter, job.future}, timeout=deadline - time.monotonic(),
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        async for line in _ending(job, feed, chunk, finish, usage, timeout_s):
            yield line
    finally:
        if not job.future.done():
            on_abandon()


async def _ending(job: Job, feed: EventFeed, chunk: Chunk,
                  finish: Callable[[list[Completion]], list[Completion]],
                  usage: dict[str, int] | None, timeout_s: float) -> AsyncIterator[str]:
    if not job.future.done():
        yield sse({"error": {"message": f"no answer within request_timeout_s={timeout_s:g}",
                             "type": "timeout_error", "param": None, "code": "timeout"}})
        yield sse("[DONE]")
        return
    try:
        outs = finish(job.future.result())
    except Exception as e:
        yield sse({"error": {"message": f"generation failed: {type(e).__name__}: {e}",
                             "type": "server_error", "param": None, "code": "generation_failed"}})
        yield sse("[DONE]")
        return
    for row, (stream, out) in enumerate(zip(feed.streams, outs, strict=True)):
        tail = stream.finish(out.text)
        if tail:
            yield sse(chunk(row, tail, None))
        yield sse(chunk(row, None, out.finish_reason))
    if usage is not None:
        completion = sum(o.tokens for o in outs)
        last = chunk(0, None, None)
        yield sse({**last, "choices": [], "usage": {**usage, "completion_tokens": completion,
                   "total_tokens": usage["prompt_tokens"] + completion}})
    yield sse("[DONE]")

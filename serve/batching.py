"""Continuous batching for one model (asyncio only, no Ray: unit-tested alone).

Ray's `@serve.batch` forms the next batch while the current one still runs, so with no wait
it queues batches of one behind the model, and with a wait every request at an idle replica
pays it (one request at a time to the kefu model: p50 22.8-25.6 ms with a 10 ms wait, 12.5-12.8
ms with none). Here the next batch is formed
when the model is free: a request at an idle replica runs at once, and under load every
call takes all that queued while the last one ran, up to `max_size`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Run = Callable[[list[Any]], Awaitable[Sequence[Any]]]


class Batcher:
    """`await batcher.submit(item)` answers `run(batch)[i]` for the batch the item ran in.
    One `run` at a time; `wait_s` > 0 lets an idle batcher wait that long for company
    (only worth it where a call of many costs about what a call of one does, as on a GPU)."""

    def __init__(self, run: Run, max_size: int, wait_s: float = 0.0) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 (got {max_size})")
        self.run, self.max_size, self.wait_s = run, max_size, wait_s
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] | None = None
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        if self._queue is None:  # made on the loop that uses it: a replica's own
            self._queue, self._arrived = asyncio.Queue(), asyncio.Event()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    async def _work(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            if self.wait_s > 0:
                await self._wait_for_company(batch)
            while len(batch) < self.max_size and not queue.empty():
                batch.append(queue.get_nowait())
            # A caller that gave up (its request was cancelled) costs no compute.
            live = [(item, future) for item, future in batch if not future.done()]
            if not live:
                continue
            try:
                results = await self.run([item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"run answered {len(results)} of {len(live)} items")
            except Exception as exc:  # every caller in the batch hears it; the next batch runs
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _wait_for_company(self, batch: list) -> None:
        """Until the batch is full or `wait_s` has passed. Waits on an event, not on the
        queue: a `queue.get()` cancelled by its timeout can lose the item it just took."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_size and loop.time() < deadline:
            if self._queue.empty():
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                except TimeoutError:
                    return
            while len(batch) < self.max_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())

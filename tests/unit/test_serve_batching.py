"""The replica's batcher: no wait when idle, full batches under load, errors to their callers."""

import asyncio

import pytest

from fulcrum.serve.batching import Batcher


class Model:
    """Records each call's batch; a call blocks until `release` is set, when one is given."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.calls: list[list] = []
        self.release = release

    async def run(self, items: list) -> list:
        self.calls.append(list(items))
        if self.release is not None:
            await self.release.wait()
        return [item * 10 for item in items]


async def busy(max_size: int):
    """A batcher whose first call (of item 0) is running and blocks until `release` is set."""
    release = asyncio.Event()
    model = Model(release)
    batcher = Batcher(model.run, max_size=max_size)
    first = asyncio.create_task(batcher.submit(0))
    while not model.calls:
        await asyncio.sleep(0)
    return release, model, batcher, first


def test_an_idle_batcher_runs_a_lone_item_at_once():
    async def scenario():
        model = Model()
        batcher = Batcher(model.run, max_size=16, wait_s=0.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await batcher.submit(3)
        return answer, loop.time() - started, model.calls

    answer, elapsed, calls = asyncio.run(scenario())
    assert answer == 30
    assert calls == [[3]]
    assert elapsed < 0.005


def test_under_load_each_call_takes_what_queued_while_the_last_ran():
    async def scenario():
        release, model, batcher, first = await busy(max_size=16)
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 21)]
        await asyncio.sleep(0)
        release.set()
        answers = await asyncio.gather(first, *rest)
        return answers, model.calls

    answers, calls = asyncio.run(scenario())
    assert answers == [i * 10 for i in range(21)]
    assert [len(call) for call in calls] == [1, 16, 4]
    assert calls[1] == list(range(1, 17))


def test_a_wait_lets_an_idle_batcher_gather_company():
    async def scenario():
        model = Model()
        batcher = Batcher(model.run, max_size=4, wait_s=0.2)

        async def later(item, delay):
            await asyncio.sleep(delay)
            return await batcher.submit(item)

        answers = await asyncio.gather(later(1, 0), later(2, 0.01), later(3, 0.02))
        return answers, model.calls

    answers, calls = asyncio.run(scenario())
    assert answers == [10, 20, 30]
    assert calls == [[1, 2, 3]]


def test_a_failed_call_reaches_its_callers_and_the_next_batch_still_runs():
    async def scenario():
        calls = []

        async def run(items):
            calls.append(list(items))
            if len(calls) == 1:
                raise ValueError("model failed")
            return items

        batcher = Batcher(run, max_size=8)
        with pytest.raises(ValueError, match="model failed"):
            await batcher.submit(1)
        return await batcher.submit(2), calls

    answer, calls = asyncio.run(scenario())
    assert answer == 2
    assert calls == [[1], [2]]


def test_a_run_that_answers_the_wrong_number_of_items_is_an_error():
    async def scenario():
        async def run(items):
            return items[:-1]

        return await Batcher(run, max_size=8).submit(1)

    with pytest.raises(RuntimeError, match="answered 0 of 1"):
        asyncio.run(scenario())


def test_a_caller_that_gave_up_costs_no_compute():
    async def scenario():
        release, model, batcher, first = await busy(max_size=8)
        abandoned = asyncio.create_task(batcher.submit(1))
        kept = asyncio.create_task(batcher.submit(2))
        await asyncio.sleep(0)
        abandoned.cancel()
        release.set()
        await first
        return await kept, model.calls

    answer, calls = asyncio.run(scenario())
    assert answer == 20
    assert calls == [[0], [2]]

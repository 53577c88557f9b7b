"""Grouped writes: every request gets its own answer, and a bad item fails only itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from api.services.event_recorder import GroupCommit


class Store:
    """A blocking writer that holds its first call until told, so others queue behind it."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, items: Sequence[int]) -> list[int]:
        if not self.calls:
            self.entered.set()
            self.release.wait(timeout=10)
        self.calls.append(list(items))
        if 13 in items:
            raise ValueError("13 is refused")
        return [item * 10 for item in items]


async def test_requests_waiting_on_a_write_share_the_next_one():
    store = Store()
    group = GroupCommit(store.write)
    first = asyncio.create_task(group.submit(1))
    assert await asyncio.to_thread(store.entered.wait, 10)  # the first write is running
    rest = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)  # they queue behind it
    store.release.set()

    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    assert store.calls == [[1], [2, 3, 4]]


async def test_a_failing_item_fails_alone():
    store = Store()
    store.release.set()
    group = GroupCommit(store.write)

    outcomes = await asyncio.gather(
        *(group.submit(n) for n in (12, 13, 14)), return_exceptions=True
    )

    assert outcomes[0] == 120
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == 140
    assert [12, 13, 14] in store.calls  # tried together first, then one by one
    assert store.calls[-3:] == [[12], [13], [14]]


async def test_an_item_queued_without_waiting_rides_the_next_write():
    store = Store()
    group = GroupCommit(store.write)
    first = asyncio.create_task(group.submit(1))
    assert await asyncio.to_thread(store.entered.wait, 10)
    errors: list[BaseException] = []
    group.submit_nowait(2, errors.append)
    waiting = asyncio.create_task(group.submit(3))
    await asyncio.sleep(0)
    store.release.set()

    assert (await first, await waiting) == (10, 30)
    assert store.calls == [[1], [2, 3]]
    assert errors == []


async def test_a_failed_item_queued_without_waiting_reaches_its_error_handler():
    store = Store()
    store.release.set()
    group = GroupCommit(store.write)
    failed = asyncio.get_running_loop().create_future()
    group.submit_nowait(13, failed.set_result)

    error = await asyncio.wait_for(failed, 10)
    assert isinstance(error, ValueError) and str(error) == "13 is refused"
    assert await group.submit(14) == 140, "the writer goes on"

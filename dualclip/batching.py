"""Work items of consecutive images packed into full model calls (inpaint, filter)."""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

Case = TypeVar("Case")
Item = TypeVar("Item")
Result = TypeVar("Result")


def packed_batches(
    cases: Iterable[tuple[Case, Sequence[Item]]], batch_size: int, run_batch: Callable[[list[Item]], Sequence[Result]]
) -> Iterator[tuple[Case, list[Result]]]:
    """Run the work items of consecutive cases in calls of ``batch_size`` items (the last may be smaller).

    ``cases`` yields ``(case, items)``; ``run_batch(items)`` returns one result per item.
    Yields ``(case, results of its items)`` in case order as soon as its last item has run,
    so about one batch of work is held at a time, whatever the number of cases. A case's
    items may be split over two calls; a case without items comes back without a call.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    waiting: deque[list] = deque()  # [case, results so far, items still to run], in case order
    queue: list[tuple[list, int, Item]] = []  # (waiting entry, position in its case, item) not yet run

    def run(count: int) -> None:
        batch = queue[:count]
        del queue[:count]
        results = run_batch([item for _, _, item in batch])
        if len(results) != len(batch):
            raise ValueError(f"run_batch returned {len(results)} results for {len(batch)} items")
        for (entry, position, _), result in zip(batch, results):
            entry[1][position] = result
            entry[2] -= 1

    def finished() -> Iterator[tuple[Case, list[Result]]]:
        while waiting and waiting[0][2] == 0:
            case, results, _ = waiting.popleft()
            yield case, results

    for case, items in cases:
        entry = [case, [None] * len(items), len(items)]
        waiting.append(entry)
        queue.extend((entry, position, item) for position, item in enumerate(items))
        while len(queue) >= batch_size:
            run(batch_size)
        yield from finished()
    while queue:
        run(batch_size)
    yield from finished()

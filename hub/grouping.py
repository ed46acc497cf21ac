"""Group commit, generically: calls that arrive while one group is running wait, then share
the next group. Under light load every call runs alone at once; under heavy load the
groups grow by themselves, so the fixed cost of a transaction is paid once per group
instead of once per call. Used by the API's intake (`hub.intake.GroupIntake`) and by the
dramatiq actors taking jobs over from the relay (`hub.dispatch`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Slot(Generic[T]):
    item: T
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: BaseException | None = None


class Grouped(Generic[T]):
    """`grouped(item)` returns once `run` has run over a group holding `item` (and raises
    what `run` raised for that group). `run` keeps any per-item result in the items. The
    first waiting caller leads: it runs the group of everyone waiting (up to `max_size` by
    `size`), then wakes them and hands the lead to the next waiter."""

    def __init__(self, run: Callable[[list[T]], None], size: Callable[[T], int] = lambda _: 1,
                 max_size: int = 1000) -> None:
        self.run, self.size, self.max_size = run, size, max_size
        self._lock = threading.Lock()
        self._queue: list[_Slot[T]] = []
        self._leading = False

    def __call__(self, item: T) -> None:
        me = _Slot(item)
        with self._lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            me.wake.wait()
        if not me.done:  # first, or woken to lead the next group
            self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        with self._lock:
            group: list[_Slot[T]] = []
            total = 0
            while self._queue and (not group or
                                   total + self.size(self._queue[0].item) <= self.max_size):
                group.append(self._queue.pop(0))
                total += self.size(group[-1].item)
        try:
            self.run([slot.item for slot in group])
        except BaseException as exc:
            for slot in group:
                slot.error = exc
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            for slot in group:
                slot.done = True
                slot.wake.set()
            if successor is not None:
                successor.wake.set()

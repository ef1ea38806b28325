"""One answer at a time for every front end of one server: the chat UI and the HTTP API take
turns (first come, first served) on the same model."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .assistant import Assistant, Stopped
from .types import Answer


class TurnLock:
    """A lock granted in the order it was asked for (``threading.Lock`` is not fair), so a busy
    API client cannot starve the UI or the other way round. A caller whose ``stop`` is set
    while it waits leaves the queue (a client that went away holds no place in it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # the callers waiting, in order of arrival
        self._held = False

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for this caller's turn and take the lock (True); False, without the lock, if
        ``stop`` was set first."""
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._held or self._queue[0] is not me:
                if stop is not None and stop.is_set():
                    self._queue.remove(me)
                    self._cond.notify_all()  # the next one may now be first
                    return False
                self._cond.wait(0.1 if stop is not None else None)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> TurnLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn (not counting the one holding the lock)."""
        with self._cond:
            return len(self._queue)


class LockedAssistant(Assistant):
    """An ``Assistant`` whose answers take ``lock``: the assistants of one server (one per model
    size) share it, so answers are generated one at a time whoever asks."""

    def __init__(self, lock: TurnLock, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = lock

    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            history: list[str] | None = None, k: int | None = None,
            stop: threading.Event | None = None) -> Answer:
        """``Assistant.ask`` in turn. ``k``: passages for this answer only (the settings are
        put back unless someone else changed them meanwhile); ``stop``: set while waiting, the
        answer is not started and its place in the queue is given up (``Stopped``)."""
        if not self.lock.acquire(stop):
            raise Stopped("stopped before its turn")
        try:
            if stop is not None and stop.is_set():
                raise Stopped("stopped before its turn")
            if k is None or k == self.settings.k:
                return super().ask(question, on_token, history, stop)
            before = self.settings
            self.settings = mine = before.replace(k=k)
            try:
                return super().ask(question, on_token, history, stop)
            finally:
                if self.settings is mine:
                    self.settings = before
        finally:
            self.lock.release()

"""One answer at a time for every front end of one server: the chat UI and the HTTP API take
turns (first come, first served) on the same model."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .assistant import Assistant, Stopped
from .types import Answer


class TurnLock:
    """A lock granted in the order it was asked for (``threading.Lock`` is not fair), so a busy
    API client cannot starve the UI or the other way round."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # the ticket the next caller gets
        self._serving = 0  # the ticket that holds the lock
        self._held = False

    def __enter__(self) -> TurnLock:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving or self._held:
                self._cond.wait()
            self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._held = False
            self._serving += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn (not counting the one holding the lock)."""
        with self._cond:
            return self._next - self._serving - (1 if self._held else 0)


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
        answer is not started (``Stopped``)."""
        with self.lock:
            if stop is not None and stop.is_set():
                raise Stopped("stopped before its turn")
            if k is None or k == self.settings.k:
                return super().ask(question, on_token, history)
            before = self.settings
            self.settings = mine = before.replace(k=k)
            try:
                return super().ask(question, on_token, history)
            finally:
                if self.settings is mine:
                    self.settings = before

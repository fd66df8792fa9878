"""Background refreshes: the model holder and the serving tables poll the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable


def poll(
    seconds: Callable[[], float], refresh: Callable[[], object], stop: threading.Event, name: str
) -> threading.Thread:
    """Call `refresh` every `seconds()` seconds on a daemon thread, until `stop` is set."""

    def loop() -> None:
        while not stop.wait(seconds()):
            refresh()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread

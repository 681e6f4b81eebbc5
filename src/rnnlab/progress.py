"""What a long loop shows and hears on the terminal: a small progress bar on standard
error (quiet when that is not a terminal), and Ctrl-C turned into a flag the loop checks
between updates (:func:`sigint_flag`).
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager


class Progress:
    """``update(n, **stats)`` advances by n units and shows the latest stats.

    Shows done/total, percentage, units per second, time left and the stats; redraws at
    most ten times a second. ``note(text)`` prints a line above the bar.
    """

    def __init__(self, total: int | None, *, enabled: bool | None = None, done: int = 0,
                 unit: str = "batch", stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.total, self.done, self.start_done, self.unit = total, done, done, unit
        self.t0 = self.last = time.perf_counter()
        self.stats: dict = {}

    def update(self, n: int = 1, **stats) -> None:
        self.done += n
        self.stats.update(stats)
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or (self.total and self.done >= self.total)):
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        stats = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in self.stats.items())
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            frac = min(self.done / self.total, 1.0)
            width = 20
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            head = (f"[{bar}] {self.done}/{self.total} {frac:4.0%} {rate:.1f} {self.unit}/s, "
                    f"{_fmt(left)} left")
        else:  # no known end in units (e.g. a time budget): the caller's stats say it
            head = f"{self.unit} {self.done}, {rate:.2f} {self.unit}/s,"
        self.stream.write(f"\r{head} {stats}\x1b[K")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K" + text + "\n")
            self._draw(time.perf_counter())

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@contextmanager
def sigint_flag():
    """Within the block Ctrl-C sets a flag instead of raising, so that a training loop
    finishes its update and writes a checkpoint first.

    Yields a list that turns true (non-empty) at the first Ctrl-C; a second Ctrl-C raises
    ``KeyboardInterrupt`` at once. Outside the main thread Ctrl-C is left alone.
    """
    flag: list = []

    def handler(signum, frame):
        if flag:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag.append(True)

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        if old is not None:  # None: a handler not set from Python, which cannot be restored
            signal.signal(signal.SIGINT, old)

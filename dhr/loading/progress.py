"""A small progress display for ``dhr load`` on stderr.

On a terminal one line is redrawn in place (files done/total, resources, rate, current file) at
most ten times a second; otherwise (a pipe, a log file, CI) one plain line is printed per file.
"""

from __future__ import annotations

import time
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


class Progress:
    """Counts files and resources and shows them as they change."""

    def __init__(self, stream: TextIO, total_files: int, tty: bool | None = None) -> None:
        self.stream = stream
        self.total_files = total_files
        self.tty = stream.isatty() if tty is None else tty
        self.files_done = 0
        self.loaded = 0
        self.failed = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._current = ""
        self._file_started = self.started
        self._file_loaded = 0
        self._file_failed = 0
        self._width = 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return (self.loaded + self.failed) / elapsed if elapsed > 0 else 0.0

    def start_file(self, name: str) -> None:
        self._current = name
        self._file_started = time.perf_counter()
        self._file_loaded = 0
        self._file_failed = 0
        self._draw(force=True)

    def count(self, loaded: int = 0, failed: int = 0) -> None:
        self.loaded += loaded
        self.failed += failed
        self._file_loaded += loaded
        self._file_failed += failed
        self._draw()

    def finish_file(self) -> None:
        self.files_done += 1
        if self.tty:
            self._draw(force=True)
            return
        seconds = time.perf_counter() - self._file_started
        failed = f", {self._file_failed} failed" if self._file_failed else ""
        print(
            f"[{self.files_done}/{self.total_files}] {self._current}: "
            f"{self._file_loaded} loaded{failed} in {seconds:.2f}s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """End the redrawn line so that the summary starts on a fresh one."""
        if self.tty and self._width:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        done = self.files_done / self.total_files if self.total_files else 1.0
        filled = round(done * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        failed = f" ({self.failed} failed)" if self.failed else ""
        current = self._current if len(self._current) <= 40 else "..." + self._current[-37:]
        return (
            f"[{bar}] {self.files_done}/{self.total_files} files | "
            f"{self.loaded} resources{failed} | {self.rate:,.0f}/s | {current}"
        )

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        text = self.line()
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

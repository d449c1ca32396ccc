"""A one-line progress bar for the host side of the optimisation (between chunks).

On a terminal the line is redrawn in place; elsewhere (a log file, CI) a line is printed at
most every ``interval`` seconds and at the end.
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``[####......] step 120/400  loss 1.23e-04 (x1e-3 of start)  35.2 steps/s``; with
    another ``unit`` and no loss: ``[####......] 640/1000 maps  35.2 maps/s``."""

    def __init__(self, total: int, *, stream=None, width: int = 24, interval: float = 5.0,
                 label: str = "", unit: str = "steps"):
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.label = label
        self.unit = unit
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_print = 0.0
        self._open = False

    def update(self, step: int, loss: float | None = None, initial: float | None = None,
               rate: float | None = None, *, final: bool = False) -> None:
        """Report ``step`` (of ``total``), the mean ``loss`` (if any) and ``rate`` in units/s."""
        filled = int(self.width * min(step, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        count = f"{step:>{len(str(self.total))}}/{self.total}"
        count = f"step {count}" if self.unit == "steps" else f"{count} {self.unit}"
        text = f"{self.label}[{bar}] {count}"
        if loss is not None:
            ratio = f" (x{loss / initial:.1e} of start)" if initial and initial > 0 else ""
            text += f"  loss {loss:.3e}{ratio}"
        if rate:
            text += f"  {rate:6.1f} {self.unit}/s"
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            self._open = True
            if final:
                self.stream.write("\n")
                self._open = False
        elif final or now - self._last_print >= self.interval:
            self.stream.write(text + "\n")
            self._last_print = now
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

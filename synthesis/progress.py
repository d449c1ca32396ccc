"""The optimisation's progress bar (host side, between chunks), drawn by tqdm.

``lbfgs:  45%|##########8             | 270/600 [00:20<00:25, 13.10 steps/s,
loss 1.234e-04 (x3.1e-03 of start)]`` (one line).

The rate is the engine's, over the compiled steps of the last chunk; the ETA is the steps
left at that rate. On a terminal tqdm redraws the line in place; on anything else (a log
file, CI) each redraw is one line, at most one every ``interval`` seconds, and the last one.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["ProgressBar"]


class _EngineRate(tqdm):
    """tqdm showing a rate it is given (steps/s of the compiled chunks) instead of its own."""

    monitor_interval = 0  # no monitor thread: updates come only between chunks
    rate: float | None = None

    @property
    def format_dict(self):
        d = super().format_dict
        if self.rate:
            d["rate"] = self.rate
        return d


class _Lines:
    """A text stream for tqdm that turns each in-place redraw into one line (non-terminals)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class ProgressBar:
    """Steps done of ``total``, steps/s, ETA, the mean loss and its ratio to the start (or, with
    another ``unit`` and no loss, e.g. maps encoded: ``640/1000 [00:20<00:11, 32.1 maps/s]``).

    Args:
        total: the step budget.
        stream: where to draw (default ``sys.stderr``).
        width: width of the bar, characters.
        interval: on a non-terminal, the least seconds between two lines.
        label: text before the bar (e.g. ``"lbfgs "``).
        unit: what is counted (``"steps"``).
    """

    def __init__(self, total: int, *, stream=None, width: int = 24, interval: float = 5.0,
                 label: str = "", unit: str = "steps"):
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.label = label
        self.unit = unit
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: _EngineRate | None = None

    def _open(self, postfix: str) -> _EngineRate:
        """The tqdm bar, made at the first report (after compilation, so its clock starts then)."""
        return _EngineRate(
            total=self.total, desc=self.label.rstrip() or None, unit=f" {self.unit}",
            postfix=postfix,
            file=self.stream if self.tty else _Lines(self.stream),
            mininterval=0.1 if self.tty else self.interval, miniters=0, leave=True,
            dynamic_ncols=self.tty, ascii=None if self.tty else True,
            bar_format="{l_bar}{bar:%d}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                       "{rate_noinv_fmt}{postfix}]" % self.width)  # steps/s, also below 1

    def update(self, step: int, loss: float | None = None, initial: float | None = None,
               rate: float | None = None, *, final: bool = False) -> None:
        """Report ``step`` (of ``total``), the mean ``loss`` (if any) and ``rate`` in units/s.

        ``final``: the last report; its line is drawn whatever the interval, and closed.
        """
        postfix = ""
        if loss is not None:
            ratio = f" (x{loss / initial:.1e} of start)" if initial and initial > 0 else ""
            postfix = f"loss {loss:.3e}{ratio}"
        if self._bar is None:
            self._bar = self._open(postfix)
        bar = self._bar
        if bar.disable:  # closed by a final report
            return
        bar.rate = rate
        bar.set_postfix_str(postfix, refresh=False)
        step = min(int(step), self.total)
        if final:
            bar.n = step
            bar.close()  # draws the final state once
        elif step > bar.n:  # (the first report is drawn when the bar is made)
            bar.update(step - bar.n)

    def close(self) -> None:
        """End the line (a run stopped early keeps its last report)."""
        if self._bar is not None:
            self._bar.close()

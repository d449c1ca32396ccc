"""The progress bar: what it shows, on a terminal and in a log, and when it stays quiet."""

import io
import re

from synthesis.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _run(stream, *, total=600, chunk=10, interval=5.0, stop=None):
    bar = ProgressBar(total, stream=stream, interval=interval, label="lbfgs ")
    bar.update(0, 2.0, 2.0, None)
    for step in range(chunk, (stop or total) + 1, chunk):
        bar.update(step, 2.0 / step, 2.0, 12.5, final=step == total)
    bar.close()
    return stream.getvalue()


def test_log_gets_whole_lines_with_rate_eta_and_loss():
    lines = _run(io.StringIO(), interval=3600).splitlines()
    # a log (not a terminal): the first report and the last, no carriage returns between
    assert len(lines) == 2 and "\r" not in "".join(lines)
    first, last = lines
    assert first.startswith("lbfgs:") and "0/600" in first and "loss 2.000e+00" in first
    assert "600/600" in last and "100%" in last
    assert "12.50 steps/s" in last
    assert "loss 3.333e-03 (x1.7e-03 of start)" in last
    assert re.search(r"\[\d\d:\d\d<00:00,", last)  # elapsed < ETA


def test_log_lines_at_most_every_interval():
    text = _run(io.StringIO(), interval=0.0)
    assert text.count("\n") == 61  # interval 0: every report, the final one once
    assert text.count("600/600") == 1


def test_eta_is_the_steps_left_at_the_engines_rate():
    stream = io.StringIO()
    bar = ProgressBar(600, stream=stream, interval=0.0)
    bar.update(0, 1.0, 1.0, None)
    bar.update(100, 0.5, 1.0, 10.0)  # 500 steps left at 10 steps/s: 50 s
    assert "100/600 [00:00<00:50, 10.00 steps/s" in stream.getvalue().splitlines()[-1]


def test_terminal_redraws_in_place_and_ends_the_line():
    text = _run(Terminal())
    assert text.count("\r") >= 2 and text.endswith("\n") and text.count("\n") == 1
    assert "600/600" in text.rsplit("\r", 1)[-1]


def test_stopped_early_keeps_its_last_report():
    lines = _run(io.StringIO(), interval=3600, stop=250).splitlines()
    assert len(lines) == 2 and "250/600" in lines[-1]  # close() draws where it stopped

"""Progress output for long jobs: a bar with rate and ETA on a terminal, periodic lines otherwise."""

import sys
import time


def format_duration(seconds):
    """``h:mm:ss`` (or ``m:ss``) for a duration in seconds."""
    seconds = int(max(0, round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Reports ``done / total`` work with a rate and an ETA.

    Args:
      total: units of work (images, steps).
      label: what is counted, e.g. ``"simulate"``.
      unit: unit name for the rate, e.g. ``"img"``.
      stream: where to write (stderr by default).
      interval: seconds between updates on a terminal; non-terminal streams get a line every
        ``10 * interval`` seconds or 10% of the work, whichever comes first.
      start: units already done before this run (a resumed run); the rate counts only new work.
      budget: wall-clock seconds this run may take (``--max_minutes``); the ETA is the sooner of
        the work's end and the budget's.
    """

    def __init__(self, total, label, unit="it", stream=None, interval=0.5, start=0,
                 budget=float("inf")):
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if self.tty else 10 * interval
        self.start = int(start)
        self.t0 = time.monotonic()
        self.last = -1e9
        self.last_fraction = -1.0
        self.done = self.start
        self.budget = budget

    def rate(self):
        """Units per second since the start of this run."""
        elapsed = time.monotonic() - self.t0
        return (self.done - self.start) / elapsed if elapsed > 0 else 0.0

    def update(self, done, extra="", force=False):
        """Record that ``done`` units are complete; ``extra`` is appended (e.g. losses)."""
        self.done = int(done)
        now = time.monotonic()
        fraction = self.done / self.total
        due = now - self.last >= self.interval or fraction - self.last_fraction >= 0.1
        if not (due or force or self.done >= self.total):
            return
        self.last, self.last_fraction = now, fraction
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        left = self.budget - (now - self.t0)
        if left < float("inf") and (eta != eta or left < eta):
            eta = max(left, 0.0)
        eta_text = format_duration(eta) if eta == eta else "?"
        width = 24
        filled = int(width * min(fraction, 1.0))
        bar = "#" * filled + "." * (width - filled)
        line = (f"{self.label} [{bar}] {self.done}/{self.total} {100 * fraction:5.1f}% "
                f"{rate:.1f} {self.unit}/s ETA {eta_text}")
        if extra:
            line += f" {extra}"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        """Finish the bar (newline on a terminal) and return the elapsed seconds."""
        self.update(self.done, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        return time.monotonic() - self.t0

"""Progress bars: quiet in logs, off when asked, shown on a terminal only when enabled=None."""

import io

from bopnp import progress


def _run(monkeypatch, tty: bool, enabled):
    err = io.StringIO()
    err.isatty = lambda: tty
    monkeypatch.setattr(progress.sys, "stderr", err)
    for _ in progress.progress_bar(range(2000), desc="job", unit="img", enabled=enabled, leave=True):
        pass
    return err.getvalue()


def test_a_log_gets_updates_30_s_apart_a_terminal_a_live_bar(monkeypatch):
    out = _run(monkeypatch, tty=False, enabled=True)
    assert "2000/2000" in out
    for tty, interval in ((False, progress.LOG_INTERVAL_S), (True, 0.1)):
        err = io.StringIO()
        err.isatty = lambda tty=tty: tty
        monkeypatch.setattr(progress.sys, "stderr", err)
        with progress.progress_bar(total=10, desc="job", unit="img") as bar:
            assert bar.mininterval == interval and bar.maxinterval >= interval
    assert progress.LOG_INTERVAL_S >= 10


def test_disabled_bars_print_nothing(monkeypatch):
    assert _run(monkeypatch, tty=True, enabled=False) == ""
    assert _run(monkeypatch, tty=False, enabled=None) == ""  # None: only on a terminal


def test_a_terminal_gets_the_bar(monkeypatch):
    assert "2000/2000" in _run(monkeypatch, tty=True, enabled=None)

"""streams.logs.CrashFilter: a crashing worker's traceback goes to a file the log line
names, not to its terminal (helper t85: mode logged it whole on stderr, then
"Reraising original exception...", and the worker exited 1)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

from streams.logs import CrashFilter


def _logger(stream: io.StringIO, f: CrashFilter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(f)
    logger = logging.getLogger(f"test-crash-{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def _crash(logger: logging.Logger) -> None:
    try:
        raise ValueError("boom in an agent")
    except ValueError as exc:
        logger.exception("Crashed reason=%r", exc)
    logger.critical("We experienced a crash! Reraising original exception...")


def test_the_traceback_goes_to_the_file_the_line_names(tmp_path: Path) -> None:
    crash_file = tmp_path / "worker-1-crash.txt"
    out = io.StringIO()
    _crash(_logger(out, CrashFilter(lambda: str(crash_file))))
    text = out.getvalue()
    assert text == (
        "citybrain: Crashed reason=ValueError('boom in an agent') (the traceback is in "
        f"{crash_file}; CITYBRAIN_DEBUG=1 logs it here)\n"
    )
    saved = crash_file.read_text()
    assert saved.startswith("Traceback (most recent call last):")
    assert saved.rstrip().endswith("ValueError: boom in an agent")


def test_debug_keeps_the_traceback_in_the_log(tmp_path: Path) -> None:
    out = io.StringIO()
    _crash(_logger(out, CrashFilter(lambda: str(tmp_path / "x"), debug=True)))
    assert "Traceback (most recent call last):" in out.getvalue()
    assert not (tmp_path / "x").exists()


def test_other_lines_with_a_traceback_pass_as_they_are(tmp_path: Path) -> None:
    out = io.StringIO()
    logger = _logger(out, CrashFilter(lambda: str(tmp_path / "x")))
    try:
        raise KeyError("k")
    except KeyError:
        logger.error("webhook failed", exc_info=sys.exc_info())
    assert out.getvalue().startswith("webhook failed\nTraceback")


def test_a_real_mode_worker_crash_keeps_its_traceback_off_stderr(tmp_path: Path) -> None:
    # mode's own lines, with its service prefix ("[^-S]: Crashed reason=..."), from a
    # real mode Worker whose service crashes.
    script = f"""
import asyncio, logging
from mode import Service, Worker
from streams.logs import CrashFilter

class S(Service):
    @Service.task
    async def boom(self):
        try:
            raise ValueError("boom")
        except ValueError as e:
            await self.crash(e)

class W(Worker):
    def on_setup_root_logger(self, logger, level):
        super().on_setup_root_logger(logger, level)
        for handler in logger.handlers:
            handler.addFilter(CrashFilter(lambda: {str(tmp_path / "crash.txt")!r}))

w = W(S(), loglevel="warning")
try:
    w.execute_from_commandline()
except SystemExit as e:
    print("exit", e.code, repr(w.crash_reason))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "exit 1 ValueError('boom')\n", done.stderr
    assert "Traceback" not in done.stderr and "Reraising" not in done.stderr
    assert f"Crashed reason=ValueError('boom') (the traceback is in {tmp_path}" in done.stderr
    assert "ValueError: boom" in (tmp_path / "crash.txt").read_text()

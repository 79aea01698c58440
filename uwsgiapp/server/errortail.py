"""What a start-up that failed says on the terminal when the error log goes to a file: the
last few error lines (:class:`ErrorTail`), each on one line (:func:`tail_line`)."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import traceback

__all__ = ["ErrorTail", "tail_line"]


def tail_line(record: logging.LogRecord) -> str:
    """``record`` on one line: its message's first line and, where a traceback follows (in
    the message or as ``exc_info``), its last: the exception (``cannot load app 'app:app':
    error while importing module 'app' ...: ModuleNotFoundError: No module named 'x'``)."""
    lines = record.getMessage().splitlines() or [""]
    last = lines[-1].strip() if len(lines) > 1 else ""
    if not last and record.exc_info and record.exc_info[1] is not None:
        last = traceback.format_exception_only(record.exc_info[1])[-1].strip()
    if not last:
        return lines[0]
    return f"{lines[0]}{' ' if lines[0].endswith(':') else ': '}{last}"


class ErrorTail(logging.Handler):
    """Keeps the last few error lines (their message only) of the logger it is put on: what a
    start-up that failed says on the terminal when the error log goes to a file (gunicorn
    prints its start-up errors there too; the file alone left the terminal silent).

    ``terminal`` is a copy of the terminal's stderr (-1: none), kept by the process that made
    the handler only: a process forked from it closes its copy, so that a worker, or what the
    app forks, does not hold a pipe open that a reader waits to see end with the server.
    """

    def __init__(self, terminal: int = -1, keep: int = 3) -> None:
        super().__init__(logging.ERROR)
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.terminal = terminal
        if terminal >= 0:
            os.register_at_fork(after_in_child=self.drop_terminal)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(tail_line(record))

    def tell(self, code: int, where: str) -> None:
        """Write the kept lines to the terminal, saying that the server stopped with exit
        ``code`` and where the whole log is."""
        text = "".join(f"uwsgiapp: {line}\n" for line in self.lines)
        text += f"uwsgiapp: stopped with exit code {code}; the error log is {where}\n"
        with contextlib.suppress(OSError):
            os.write(self.terminal, text.encode(errors="replace"))

    def drop_terminal(self) -> None:
        """Close the copy of the terminal (once: its number may be reused after)."""
        if self.terminal >= 0:
            with contextlib.suppress(OSError):
                os.close(self.terminal)
            self.terminal = -1

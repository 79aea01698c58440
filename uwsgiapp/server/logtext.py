"""Request text made safe for a log line: control characters written as ``\\xNN``, as nginx does.

A raw uwsgi client (or a decoded ``%0A`` in PATH_INFO) can put CR/LF or an ANSI escape into
any field that comes from the request; written as is, they forge log lines or drive the
terminal that tails the log. Only C0 controls and DEL are escaped: bytes 0x80-0xFF are kept,
since the environ holds the request's bytes decoded as latin-1 and a UTF-8 path must reach the
log as the same bytes.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CONTROL_CODES", "as_sent", "escape_log_text"]

#: The code points a log line must not carry as they are: the C0 controls and DEL.
CONTROL_CODES: Final = (*range(0x20), 0x7F)

_ESCAPES = {code: f"\\x{code:02X}" for code in CONTROL_CODES}


def as_sent(text: str) -> str:
    """Request text from the environ (its bytes decoded as latin-1, PEP 3333) as the client
    wrote it, for a line of text rather than bytes (the error log, the JSON access log): UTF-8
    decoded, a byte that is none as ``\\xNN``. As it was, ``/café`` came out as ``/cafÃ©``."""
    if text.isascii():
        return text
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:  # not the request's bytes: the app put it there
        return text
    sent = raw.decode("utf-8", "backslashreplace")
    if sent.isprintable():
        return sent
    # What decoding made a character that moves or breaks the line (a right-to-left override,
    # U+2028, a C1 control): written as \uXXXX. Those below 0x80 are escape_log_text's.
    return "".join(c if c < "\x80" or c.isprintable() else f"\\u{ord(c):04X}" for c in sent)


def escape_log_text(text: str) -> str:
    """``text`` with every C0 control character and DEL replaced by ``\\xNN``."""
    # isprintable() is one C loop and true for nearly every request; it is false for the
    # controls (and for some harmless characters, which translate() leaves alone).
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)

"""The session's JSON: plain JSON, plus the Python types Flask's sessions also keep.

A ``tuple``, ``bytes``, ``datetime``, ``UUID`` or markup string (anything with ``__html__``,
e.g. ``markupsafe.Markup``) is written as a one-key object whose key starts with a space, and
comes back as the same type::

    (1, 2)                  -> {" t": [1, 2]}
    b"\\x00"                 -> {" b": "AA=="}
    UUID(...)               -> {" u": "<32 hex digits>"}
    datetime(..., tzinfo=timezone.utc), whole seconds
                            -> {" d": "<HTTP date>"}      (as Flask writes it)
    any other datetime      -> {" dt": "<isoformat>"}     (naive or aware, microseconds kept)
    Markup("<b>")           -> {" m": "<b>"}
    {" t": 1} (a user dict) -> {" di": {" t__": 1}}      (so it is not read as a tag)

These are the tags of Flask's session serializer (``flask.json.tag``), so Flask's session data
reads here and ours in Flask; only ``" dt"`` is ours, for a datetime Flask's tag would change
(to UTC, to the second): Flask reads it as that one-key dict. ``" di"`` without the ``"__"``
(as uwsgiapp.web wrote it before) still reads. Session data without these types is plain
JSON. Any other type is refused when the session is saved, with the path to the value
(``session['cart'][2]``) in the message.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing as t
from datetime import datetime, timezone
from uuid import UUID

from werkzeug.http import http_date, parse_date

__all__ = ["dumps", "loads"]

#: What a tag's value turns back into; a tag is a one-key object with one of these keys.
_DECODERS: dict[str, t.Callable[[t.Any], t.Any]] = {}


def _tag(value: t.Any, path: str) -> t.Any:
    """``value`` as JSON-ready data, tagged where plain JSON would lose its type."""
    html = getattr(value, "__html__", None)
    if callable(html):  # before str: Markup is a str subclass that must stay Markup
        return {" m": str(html())}
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        out = {key: _tag(item, f"{path}[{key!r}]") for key, item in value.items()}
        if len(out) == 1 and next(iter(out)) in _DECODERS:
            ((key, item),) = out.items()
            return {" di": {f"{key}__": item}}
        return out
    if isinstance(value, list):
        return [_tag(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {" t": [_tag(item, f"{path}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, bytes):
        return {" b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, UUID):
        return {" u": value.hex}
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc and not value.microsecond:
            return {" d": http_date(value)}
        return {" dt": value.isoformat()}
    raise TypeError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which a session"
        " cannot store: use JSON types (str, int, float, bool, None, list, dict) or tuple,"
        " bytes, datetime, UUID or Markup, e.g. store an object's id rather than the object."
    )


def _untag(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            decode = _DECODERS.get(key)
            if decode is not None:
                return decode(inner)
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def _markup(text: str) -> t.Any:
    from markupsafe import Markup  # werkzeug's dependency; only needed for such a value

    return Markup(text)


def _tag_like_dict(mapping: dict[str, t.Any]) -> dict[str, t.Any]:
    # Flask appends "__" to the key; uwsgiapp.web wrote it unchanged before it wrote Flask's
    # (a tag's key never ends with "__", so the two cannot be confused).
    ((key, item),) = mapping.items()
    return {key[:-2] if key.endswith("__") else key: _untag(item)}


def _http_datetime(text: str) -> datetime:
    value = parse_date(text)
    if value is None:
        raise ValueError(f"not an HTTP date: {text!r}")
    return value


_DECODERS.update(
    {
        " t": lambda items: tuple(_untag(item) for item in items),
        " b": lambda text: base64.b64decode(text, validate=True),
        " u": UUID,
        " dt": datetime.fromisoformat,
        " d": _http_datetime,
        " m": _markup,
        " di": _tag_like_dict,
    }
)


def dumps(data: t.Mapping[str, t.Any], name: str = "session") -> str:
    """Compact JSON for ``data``; a value of another type raises ``TypeError`` naming it
    as ``name[key]...``."""
    return json.dumps(_tag(dict(data), name), separators=(",", ":"), sort_keys=True)


def loads(text: str | bytes) -> t.Any:
    """The data :func:`dumps` wrote; ``ValueError`` if it is not such JSON."""
    data = json.loads(text)
    try:
        return _untag(data)
    except (TypeError, AttributeError, binascii.Error) as e:
        raise ValueError(f"malformed tagged value: {e}") from e

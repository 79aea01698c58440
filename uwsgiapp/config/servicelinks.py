"""Kubernetes' service links: variables the kubelet puts in every pod, not options.

With ``enableServiceLinks`` (on by default), each Service of the namespace gives every pod
``<NAME>_SERVICE_HOST``, ``<NAME>_SERVICE_PORT`` (and ``_SERVICE_PORT_<PORT NAME>``),
``<NAME>_PORT`` and ``<NAME>_PORT_<N>_<PROTO>`` with its ``_PROTO``, ``_PORT`` and ``_ADDR``,
``<NAME>`` being the Service's name upper-cased, ``-`` made ``_``. A Service called
``uwsgiapp`` (or ``uwsgiapp-anything``) therefore puts ``UWSGIAPP_*`` variables in the pods,
which the options' environment layer would report, seven warnings at every start, each with a
misleading "did you mean". Told apart by name and value both: a ``UWSGIAPP_PORT=8000`` a user
wrote is not the kubelet's (``tcp://10.96.0.12:3031``) and is still reported.

uwsgiapp's own variables that name no option are not reported either (:func:`not_an_option`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

__all__ = ["is_service_link", "not_an_option"]

#: uwsgiapp's own variables that name no option: the build's (``pip install``; exported in a CI
#: job that then starts the server, it was "unknown ... did you mean UWSGIAPP_PIDFILE?") and
#: ``uwsgiapp dev``'s, for its serving process.
OWN_VARIABLES: Final = frozenset({"COMPILE", "DEV_WATCHER"})

_PROTOS: Final = ("tcp", "udp", "sctp")
# The Service's own name part is lazy: UWSGIAPP_SERVICE_PORT is the port of "uwsgiapp", not
# the address of a Service "uwsgiapp-service".
_NAME: Final = re.compile(
    r"(?:[A-Z0-9_]+?_)??(?:(?P<host>SERVICE_HOST)|(?P<sport>SERVICE_PORT(?:_[A-Z0-9_]+)?)"
    r"|PORT(?:_(?P<num>\d+)_(?P<proto>TCP|UDP|SCTP)(?:_(?P<part>PROTO|PORT|ADDR))?)?)"
)
_URL: Final = re.compile(r"(?:tcp|udp|sctp)://\S+:\d+")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def not_an_option(name: str, value: str, prefix: str) -> bool:
    """Whether ``name`` (starting with ``prefix``) = ``value`` is a variable known to name no
    option: uwsgiapp's own (:data:`OWN_VARIABLES`), or a service link of the kubelet's."""
    return name.removeprefix(prefix) in OWN_VARIABLES or is_service_link(name, value, prefix)


def is_service_link(name: str, value: str, prefix: str) -> bool:
    """Whether the variable ``name`` (starting with ``prefix``) = ``value`` is one the kubelet
    sets for a Service, by its name's form and its value's."""
    match = _NAME.fullmatch(name.removeprefix(prefix))
    if match is None:
        return False
    if match["host"]:
        return _is_ip(value)
    if match["sport"]:
        return value.isdigit()
    part = match["part"]
    if part == "PROTO":
        return value == match["proto"].lower() and value in _PROTOS
    if part == "PORT":
        return value == match["num"]
    if part == "ADDR":
        return _is_ip(value)
    return _URL.fullmatch(value) is not None

"""What to say about a command-line option we do not have: gunicorn's and uWSGI's names for
ours, and the nearest of our own names for a typo.

Users arrive with another server's habits; "unrecognized arguments: --bind" alone sends them
to the documentation for what one line can tell.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from uwsgiapp.exitcodes import ClientExit
from uwsgiapp.foreignopts import FOREIGN_OPTIONS

__all__ = [
    "SERVE_EXAMPLES",
    "command_hint",
    "hint_for",
    "misparsed_app",
    "unrecognized_message",
]


def hint_for(arg: str, ours: Iterable[str]) -> str:
    """What to tell about the unknown ``arg`` (``--name`` or ``--name=value``): another
    server's name for one of our options, or the nearest of ``ours``; "" for neither."""
    name = arg.partition("=")[0]
    known = set(ours)
    if not name.startswith("-"):
        return ""
    # -w4: a short option with its value
    key = name[:2] if name[1:2] != "-" and name[:2] in FOREIGN_OPTIONS else name
    if key in ("--bind", "-b") and "--host" in known:  # `dev`: an HTTP server of its own
        return f"{name}: use --host HOST --port PORT"
    if key == "--reload" and "--no-reload" in known:
        return f"{name}: 'uwsgiapp dev' reloads on code changes by default (--no-reload: not)"
    if key == "-p" and "--port" in known:  # flask run's -p PORT
        return f"{name}: use --port PORT"
    if key in ("--debug", "--debugger") and "--no-debugger" in known:  # flask run --debug
        return (
            f"{name}: 'uwsgiapp dev' runs in debug mode, with the debugger (--no-debugger: without)"
        )
    if key in FOREIGN_OPTIONS:
        return f"{name}: {FOREIGN_OPTIONS[key]}" + _serve_only(FOREIGN_OPTIONS[key], known)
    if said := _uwsgi_key(name):  # what an ini's key of that name is told (--limit-as)
        return f"{name}: {said}" + _serve_only(said, known)
    if name.startswith("--"):
        import difflib  # only for a name that is not known

        # Another server's names too: --procesess is uWSGI's --processes mistyped.
        close = difflib.get_close_matches(name, [o for o in known if o.startswith("--")], n=1)
        if close:
            return f"{name}: did you mean {close[0]}?"
        foreign = [o for o in FOREIGN_OPTIONS if o.startswith("--")] if "--workers" in known else []
        close = difflib.get_close_matches(name, foreign, n=1, cutoff=0.85)  # not --bogus
        if close:
            return f"{name}: did you mean {close[0]}? {FOREIGN_OPTIONS[close[0]]}"
    return ""


def _uwsgi_key(name: str) -> str:
    """What uWSGI's option ``--name`` is here, as an ini's key of that name is told: its
    advice, or the option it maps to (``--max-requests-delta`` is ``--max-requests-jitter``;
    difflib's nearest was --max-requests); "" for none."""
    from uwsgiapp.config.inikeys import ADVICE, ADVICE_PREFIXES, LOGGER_KEYS, SIMPLE_KEYS

    key = name[2:] if name.startswith("--") else ""
    if key in LOGGER_KEYS:
        return f"use --{LOGGER_KEYS[key].replace('_', '-')} PATH"
    if key in ADVICE:
        return ADVICE[key]
    if key and (found := [a for p, a in ADVICE_PREFIXES.items() if key.startswith(p)]):
        return found[0]  # --static-map: static- (as an ini's key is told)
    ours = SIMPLE_KEYS.get(key, "").replace("_", "-")
    return f"uWSGI's --{key} is --{ours}" if ours and ours != key else ""


def _serve_only(hint: str, known: set[str]) -> str:
    """For ``dev`` (no ``--workers``): a hint naming options it does not have says whose they
    are (``-e``'s "use --env" sent a dev user to an option dev refused)."""
    if "--workers" in known or "--host" not in known:  # not dev's (request, ping, top)
        return ""
    from uwsgiapp.config.configload import spec_for  # the config imports this module

    named = [
        o
        for o in dict.fromkeys(re.findall(r"(?<![\w-])--[a-z][\w-]*", hint))
        if o not in known and spec_for(o[2:].replace("-", "_")) is not None
    ]
    return f" (of 'uwsgiapp serve': dev has no {', '.join(named)})" if named else ""


def unrecognized_message(extras: Sequence[str], ours: Iterable[str], real_app: str = "") -> str:
    """argparse's "unrecognized arguments" line, with a hint for each unknown option.

    ``real_app``: the word that is the real APP when argparse took an unknown option's value
    for it (:func:`misparsed_app`)."""
    known = list(ours)
    hints = [h for h in (hint_for(arg, known) for arg in extras) if h]
    if real_app:  # `--bind 0:80 app:app`: 0:80 became the APP
        hints.append(
            f"{real_app}: not the APP, because the value of an unknown option before it was "
            "taken as the APP argument; fix the options above and this is the APP again"
        )
    message = f"unrecognized arguments: {' '.join(extras)}"
    return message + "".join(f"\n  {h}" for h in hints)


def _option_and_value(word: object) -> bool:
    """Whether ``word`` is an option and its value in one word (``-b 0.0.0.0:8000``)."""
    return (
        isinstance(word, str)
        and re.match(r"--?[A-Za-z][\w-]*[ =]", word) is not None
        and (" " in word)
    )


def _value_of_unknown(argv: Sequence[str], where: int, extras: Sequence[str]) -> bool:
    """Is ``argv[where]`` the value of the unknown option (of ``extras``) right before it?"""
    before = argv[where - 1] if where else ""
    return before.startswith("-") and "=" not in before and before in extras


def misparsed_app(args: Sequence[Any], namespace: object, extras: Sequence[str]) -> str:
    """The real APP ("" for none) when the APP argparse parsed into ``namespace`` from ``args``
    (``parse_known_args``'s: the argv, or None for ``sys.argv``) is an unknown option's value:
    the first word left over that is no unknown option's value itself."""
    argv = list(args[0]) if args and args[0] is not None else sys.argv[1:]
    app = getattr(namespace, "app_positional", None) or getattr(namespace, "app", None)
    if not isinstance(app, str) or app not in argv:
        return ""
    taken = argv.index(app)
    if not _value_of_unknown(argv, taken, extras):
        return ""
    for where in range(taken + 1, len(argv)):
        word = argv[where]
        if (
            not word.startswith("-")
            and word in extras
            and not _value_of_unknown(argv, where, extras)
        ):
            return word
    return ""


def command_hint(message: str, argv: Sequence[str] | None = None) -> str:
    """What to add to argparse's line about an unknown command: for an APP given first
    (``uwsgiapp app:app``, gunicorn's order), that the command comes first; for the value
    of another server's option (uWSGI's ``uwsgi --reload PIDFILE``), that option's hint; for
    a typo, nothing (the choices are in the line). ``argv``: the words parsed (the
    command line's unless given)."""
    prefix = "argument COMMAND: invalid choice: '"
    given = message[len(prefix) :].partition("'")[0] if message.startswith(prefix) else ""
    words = list(sys.argv[1:] if argv is None else argv)
    where = words.index(given, 1) if given in words[1:] else 0
    if where and words[where - 1] in FOREIGN_OPTIONS:
        return f"\n  {words[where - 1]}: {FOREIGN_OPTIONS[words[where - 1]]}"
    if where and words[where - 1].startswith("-"):  # `uwsgiapp --ini uwsgi.ini`, uWSGI's way
        option = words[where - 1]
        return f"\n  {option}: options follow the command: uwsgiapp serve {option} {given}"
    if ":" in given or given.endswith(".py"):
        return "\n  the command comes first: uwsgiapp serve APP [options] (gunicorn APP)"
    return ""


class HintingParser(argparse.ArgumentParser):
    """argparse with our exit code for usage errors and no traceback; an argument a command
    does not know is an error in that command's usage (argparse would hand it up to the
    top-level parser, which printed the top-level usage for a mistyped ``serve`` option),
    with a hint for gunicorn's and uWSGI's names and for typos. No abbreviations: ``--worker``
    silently meaning ``--workers`` hides a typo, and ``--reload`` was "ambiguous".
    ``intermixed``: its positionals may follow options (``request SOCKET -i PATH``, as curl
    takes them: PATH was taken as absent at the first option, then refused)."""

    intermixed = False
    _mixing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message += command_hint(message)
        sys.stderr.write(self.short_usage())
        self.exit(ClientExit.USAGE, f"{self.prog}: error: {message}\n")

    def short_usage(self) -> str:
        """argparse's usage line, or, where it lists every option (serve's: 40 lines before
        the one line that says what is wrong), a line naming the arguments and ``--help``."""
        usage = self.format_usage()
        if usage.count("\n") <= 4:
            return usage
        names = [
            f"[{a.metavar or a.dest}]" if a.nargs in ("?", "*") else str(a.metavar or a.dest)
            for a in self._get_positional_actions()
        ]
        return f"usage: {' '.join([self.prog, '[options]', *names])} ({self.prog} --help)\n"

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        if self._mixing:  # a pass of the intermixed parse: what is left is its business
            return super().parse_known_args(*args, **kwargs)
        if self.intermixed:
            self._mixing = True
            try:
                namespace, extras = super().parse_known_intermixed_args(*args, **kwargs)
            finally:
                self._mixing = False
        else:
            namespace, extras = super().parse_known_args(*args, **kwargs)
        # An option and its value in one word, taken for the APP or left over (not one that
        # is an option's value: --log-format "- %(uri)").
        taken = [getattr(namespace, "app_positional", None), getattr(namespace, "app", None)]
        joined = next((w for w in [*taken, *extras] if _option_and_value(w)), "")
        if extras or joined:
            real_app = misparsed_app(args, namespace, extras) if extras else ""
            message = unrecognized_message(extras, self._option_string_actions, real_app)
            if joined:  # argparse takes it for a positional: the APP, here
                message += (
                    f"\n  {joined!r}: an option and its value in one word (a Dockerfile's exec "
                    f"form, [{joined!r}]): give them as two words, or as --option=value"
                )
            self.error(message if extras else message.partition("\n  ")[2])
        return namespace, extras


#: ``serve --help``'s first lines after the description: the commands a newcomer types.
SERVE_EXAMPLES = """\
  uwsgiapp serve app:app --socket /run/app/app.sock --workers 4
      (nginx: uwsgi_pass unix:/run/app/app.sock; include uwsgi_params;)
  uwsgiapp serve app:app --socket 127.0.0.1:3031 --harakiri 30 --access-log combined
  uwsgiapp serve --ini uwsgi.ini          (an existing uWSGI ini)
  uwsgiapp serve app:app --check-config   (import the app, check the options, exit)"""

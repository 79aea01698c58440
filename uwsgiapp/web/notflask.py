"""What Flask has and uwsgiapp.web does not: each name, asked for, says so and what to do,
instead of Python's bare ``ImportError`` / ``AttributeError`` / ``TypeError`` (which named an
internal class)."""

from __future__ import annotations

import dis
import sys
import typing as t
from types import FrameType

__all__ = [
    "FlaskOnlyModule",
    "flask_attribute",
    "flask_name",
    "flask_submodule",
    "refuse_flask_options",
]

_TEMPLATES = "there are no templates (no Jinja): render with jinja2 yourself, or use Flask"
_SIGNALS = "there are no signals: an errorhandler(Exception) or a teardown_request instead"

#: Names ``from flask import ...`` gives that ``uwsgiapp.web`` has not.
_NAMES: dict[str, str] = {
    **dict.fromkeys(
        (
            "render_template",
            "render_template_string",
            "stream_template",
            "stream_template_string",
            "get_template_attribute",
        ),
        _TEMPLATES,
    ),
    "flash": "there is no flash(): keep the message in session yourself, or use Flask",
    "get_flashed_messages": "there is no flash(): keep the messages in session, or use Flask",
    "Flask": "the app class is App (from uwsgiapp.web import App)",
    "json": "there is no json module: jsonify() and request.get_json(); JSON_SORT_KEYS in config",
    **dict.fromkeys(
        (
            "request_started",
            "request_finished",
            "request_tearing_down",
            "got_request_exception",
            "template_rendered",
            "before_render_template",
            "message_flashed",
            "appcontext_pushed",
            "appcontext_popped",
            "appcontext_tearing_down",
        ),
        _SIGNALS,
    ),
    "views": "there are no class-based views: one function that checks request.method",
    **dict.fromkeys(
        ("request_ctx", "app_ctx"),
        "the contexts are not exposed: request, session, g and current_app",
    ),
}

#: Attributes of Flask's app (and blueprint) that App and Blueprint have not.
_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(
        (
            "jinja_env",
            "template_filter",
            "template_global",
            "template_test",
            "add_template_filter",
            "add_template_global",
            "add_template_test",
            "context_processor",
            "app_context_processor",
            "app_template_filter",
            "app_template_global",
            "app_template_test",
            "template_folder",
        ),
        _TEMPLATES,
    ),
    "teardown_appcontext": "there is no teardown_appcontext: teardown_request runs after each "
    "request",
    "cli": "there is no app.cli (no flask command): write a script that imports the app",
    "json": "there is no app.json: jsonify() and request.get_json(); JSON_SORT_KEYS in config",
    "open_resource": "there is no open_resource: open(os.path.join(app.root_path, name))",
    "open_instance_resource": "there is no instance folder: open files under app.root_path",
    "instance_path": "there is no instance folder: files load relative to app.root_path",
    "make_shell_context": "there is no flask shell: import the app in python",
    "shell_context_processor": "there is no flask shell: import the app in python",
    "test_cli_runner": "there is no app.cli: test_client() for requests",
    "record": "there is no Blueprint.record: register what it would in the blueprint's hooks",
    "record_once": "there is no Blueprint.record_once: register in the blueprint's hooks",
    "redirect": "use redirect() (from uwsgiapp.web import redirect)",
    "got_first_request": "there is no got_first_request: set up before serving (postfork)",
    "endpoint": "there is no Blueprint.endpoint: add_url_rule(rule, endpoint, view_func)",
    "aborter": "use abort() (from uwsgiapp.web import abort)",
    "ensure_sync": "views are plain functions (an async def view is refused as it is added)",
}

#: Keyword arguments of Flask(...) and Blueprint(...) that App and Blueprint do not take.
_OPTIONS: dict[str, str] = {
    "template_folder": _TEMPLATES,
    "instance_path": "there is no instance folder: files load relative to root_path",
    "instance_relative_config": "there is no instance folder: config files load relative to "
    "root_path",
    "static_host": "there is no host matching: serve static files from nginx",
    "host_matching": "there is no host matching (subdomains): one app per host in nginx",
    "subdomain_matching": "there is no host matching (subdomains): one app per host in nginx",
    "subdomain": "there is no host matching (subdomains): one app per host in nginx",
    "cli_group": "there is no flask command",
    "url_defaults": "give the routes defaults=",
    "static_folder": "a blueprint has no static folder of its own: the app's static folder, "
    "or nginx",
    "static_url_path": "a blueprint has no static folder of its own: the app's static folder, "
    "or nginx",
}


def flask_name(module: str, name: str) -> t.NoReturn:
    """``from uwsgiapp.web import name`` of Flask's: ImportError saying what stands for it
    (an AttributeError's message is lost by ``from ... import``, which makes its own); read
    any other way (``hasattr``, ``getattr(..., None)``, ``mock.patch(create=True)``), an
    AttributeError with that message, as those expect."""
    reason = _NAMES.get(name)
    if reason is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    said = f"{module} has no {name} (Flask's): {reason}"
    try:
        caller: FrameType | None = sys._getframe(2)  # the module's __getattr__ is frame 1
    except ValueError:  # called from C with no Python caller (an atexit's getattr)
        caller = None
    if _importing(caller):
        raise ImportError(said, name=module)
    raise AttributeError(said)


class FlaskOnlyModule(ImportError):
    """A module of Flask's imported from uwsgiapp.web: its import refuses, on purpose (an
    install's self-check passes over it, not over any other failed import)."""


def flask_submodule(module: str) -> t.NoReturn:
    """A module of Flask's (``flask.views``) imported from uwsgiapp.web (``uwsgiapp.web.views``):
    ImportError saying what stands for it (it was "No module named ...")."""
    package, _, name = module.rpartition(".")
    said = f"{package} has no {name} module (Flask's): {_NAMES[name]}"
    raise FlaskOnlyModule(said, name=module)


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` is running a ``from ... import`` (its IMPORT_FROM asks for the name)."""
    if frame is None:
        return False
    here = frame.f_lasti
    return any(
        i.offset == here and i.opname == "IMPORT_FROM" for i in dis.get_instructions(frame.f_code)
    )


def flask_attribute(obj: object, name: str) -> t.Any:
    """``app.name`` of Flask's that ``obj`` has not: AttributeError saying what to do; any
    other name is looked up again, so that a property whose getter raised AttributeError
    raises its own (the class's ``__getattr__`` had replaced it by one naming the property)."""
    reason = _ATTRIBUTES.get(name)
    if reason is None:
        return object.__getattribute__(obj, name)
    raise AttributeError(f"uwsgiapp.web's {type(obj).__name__} has no {name} (Flask's): {reason}")


def refuse_flask_options(kind: str, given: dict[str, object]) -> None:
    """Keyword arguments ``App(...)`` or ``Blueprint(...)`` does not take: a TypeError naming
    the first, and what to do where it is one of Flask's."""
    for name in given:
        reason = _OPTIONS.get(name)
        if reason is None:
            raise TypeError(f"{kind}() got an unexpected keyword argument {name!r}")
        raise TypeError(f"uwsgiapp.web's {kind}() takes no {name} (Flask's): {reason}")

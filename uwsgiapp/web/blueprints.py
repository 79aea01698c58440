"""Blueprints: groups of routes, hooks and error handlers registered on an app together."""

from __future__ import annotations

import typing as t

from .scaffold import F, Scaffold, check_rule, refuse_async

if t.TYPE_CHECKING:
    from .appbase import AppBase

__all__ = ["Blueprint", "check_registration"]

#: Flask's ``register_blueprint`` options that change what its rules match, which
#: uwsgiapp.web does not do (others, ``cli_group`` say, are ignored, as Flask ignores any).
_REFUSED_OPTIONS = ("subdomain", "url_defaults")


def check_registration(options: t.Mapping[str, t.Any]) -> None:
    """Raise TypeError for a ``register_blueprint`` option that changes what the rules match:
    left out silently, a blueprint meant for one subdomain would answer on every host."""
    for name in options:
        if name in _REFUSED_OPTIONS:
            raise TypeError(
                f"register_blueprint() option {name}= is not supported by uwsgiapp.web (it "
                "takes url_prefix= and name=; for url_defaults=, give the routes defaults=; "
                "for subdomain=, use Flask)."
            )


class Blueprint(Scaffold):
    """A named set of routes under an optional ``url_prefix``, with its own hooks.

    Endpoints become ``"<name>.<endpoint>"``; the blueprint's ``before_request`` (and other)
    hooks and error handlers apply only to requests routed to one of its endpoints. The
    ``*_app_*`` variants register app-wide hooks instead.
    """

    def __init__(
        self,
        name: str,
        import_name: str,
        url_prefix: str | None = None,
        root_path: str | None = None,
        **flask_only: object,
    ) -> None:
        if not name or "." in name:
            raise ValueError(f"Blueprint name {name!r} must be non-empty and contain no dot.")
        super().__init__(import_name, root_path, **flask_only)
        self.name = name
        self.url_prefix = url_prefix
        self._hook_key = name
        #: Set by the first registration: later setup would not reach the app.
        self._registered = False
        self._routes: list[
            tuple[str, str | None, t.Callable[..., t.Any] | None, bool | None, dict[str, t.Any]]
        ] = []
        #: Blueprints nested in this one, with their registration options.
        self._children: list[tuple[Blueprint, dict[str, t.Any]]] = []

    def _check_setup(self, method: str) -> None:
        # Registration copies the routes, hooks and handlers into the app once, so a later
        # addition would be silently lost (typically a routes module imported after the
        # blueprint was registered): refuse it, as Flask does.
        if self._registered:
            raise RuntimeError(
                f"Blueprint.{method}() was called on the blueprint {self.name!r} after it was"
                " registered on an app, so it would not take effect. Define the blueprint's"
                " routes, hooks and error handlers (import the modules that do) before"
                " app.register_blueprint()."
            )

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: t.Callable[..., t.Any] | None = None,
        provide_automatic_options: bool | None = None,
        **options: t.Any,
    ) -> None:
        """Record a rule; it is added to the app, prefixed, when the blueprint is registered."""
        self._check_setup("add_url_rule")
        check_rule(options, view_func)
        if endpoint is not None and "." in endpoint:
            raise ValueError(f"Endpoint {endpoint!r} may not contain a dot.")
        if view_func is not None and "." in getattr(view_func, "__name__", ""):
            raise ValueError(f"View function name {view_func.__name__!r} may not contain a dot.")
        self._routes.append((rule, endpoint, view_func, provide_automatic_options, options))

    def before_app_request(self, f: F) -> F:
        """Like :meth:`before_request`, for every request of the app."""
        self._check_hook("before_app_request", f)
        self.before_request_funcs.setdefault(None, []).append(f)
        return f

    def after_app_request(self, f: F) -> F:
        """Like :meth:`after_request`, for every request of the app."""
        self._check_hook("after_app_request", f)
        self.after_request_funcs.setdefault(None, []).append(f)
        return f

    def teardown_app_request(self, f: F) -> F:
        """Like :meth:`teardown_request`, for every request of the app."""
        self._check_hook("teardown_app_request", f)
        self.teardown_request_funcs.setdefault(None, []).append(f)
        return f

    def app_url_value_preprocessor(self, f: F) -> F:
        """Like :meth:`url_value_preprocessor`, for every request of the app."""
        self._check_hook("app_url_value_preprocessor", f)
        self.url_value_preprocessors.setdefault(None, []).append(f)
        return f

    def app_url_defaults(self, f: F) -> F:
        """Like :meth:`url_defaults`, for every endpoint of the app."""
        self._check_hook("app_url_defaults", f)
        self.url_default_functions.setdefault(None, []).append(f)
        return f

    def app_errorhandler(self, code_or_exception: type[BaseException] | int) -> t.Callable[[F], F]:
        """Like :meth:`errorhandler`, for errors anywhere in the app."""
        self._check_setup("app_errorhandler")

        def decorator(f: F) -> F:
            refuse_async(f, "app_errorhandler")
            self._register_error_handler(None, code_or_exception, f)
            return f

        return decorator

    def register_blueprint(self, blueprint: Blueprint, **options: t.Any) -> None:
        """Nest ``blueprint`` in this one; it is registered on the app with this one.

        Its name becomes ``"<this name>.<its name>"`` (so its endpoints are
        ``"parent.child.view"``), its ``url_prefix`` is appended to this one's, and this
        blueprint's hooks, URL processors and error handlers also apply to its requests (the
        nested one's error handlers first). ``options`` are those of
        :meth:`App.register_blueprint`.
        """
        self._check_setup("register_blueprint")
        check_registration(options)
        if blueprint is self:
            raise ValueError(f"The blueprint {self.name!r} cannot be registered on itself.")
        self._children.append((blueprint, options))

    def register(self, app: AppBase, options: t.Mapping[str, t.Any]) -> None:
        """Add this blueprint's rules, hooks and handlers to ``app``, then its nested ones'.

        ``options``: ``name`` and ``url_prefix`` override the blueprint's own; ``name_prefix``
        is the dotted name of the blueprint this one is nested in.
        """
        name = ".".join(filter(None, (options.get("name_prefix"), options.get("name", self.name))))
        url_prefix: str | None = options.get("url_prefix", self.url_prefix)
        if name in app.blueprints:
            raise ValueError(
                f"a blueprint named {name!r} is already registered: to mount it again, give "
                "this registration a name of its own (register_blueprint(bp, name=...))"
            )
        # App-wide hooks and handlers are added by the first registration only (as Flask's
        # record_once): a blueprint mounted twice must not run them twice per request.
        first = not any(bp is self for bp in app.blueprints.values())
        app.blueprints[name] = self
        self._registered = True
        for rule, endpoint, view_func, automatic_options, rule_options in self._routes:
            if url_prefix is not None:
                rule = _join(url_prefix, rule) if rule else url_prefix
            if endpoint is None:
                if view_func is None:
                    raise TypeError(f"Rule {rule!r} has neither an endpoint nor a view function.")
                endpoint = view_func.__name__
            app.add_url_rule(
                rule, f"{name}.{endpoint}", view_func, automatic_options, **rule_options
            )
        self._merge_hooks(app, name, first)
        for child, child_options in self._children:
            child_prefix = child_options.get("url_prefix", child.url_prefix)
            if url_prefix is not None:
                child_prefix = (
                    url_prefix if child_prefix is None else _join(url_prefix, child_prefix)
                )
            child.register(app, {**child_options, "url_prefix": child_prefix, "name_prefix": name})

    def _merge_hooks(self, app: AppBase, name: str, first: bool) -> None:
        """File this blueprint's hooks and handlers in the app's under ``name`` (its own) or
        ``None`` (app-wide, only from the ``first`` registration)."""

        def target(key: str | None) -> str | None:
            return None if key is None else name

        for own, merged in (
            (self.before_request_funcs, app.before_request_funcs),
            (self.after_request_funcs, app.after_request_funcs),
            (self.teardown_request_funcs, app.teardown_request_funcs),
            (self.url_value_preprocessors, app.url_value_preprocessors),
            (self.url_default_functions, app.url_default_functions),
        ):
            for key, funcs in own.items():
                if funcs and (key is not None or first):
                    merged.setdefault(target(key), []).extend(funcs)  # type: ignore[arg-type]
        for key, by_code in self.error_handler_spec.items():
            if key is None and not first:
                continue
            for code, by_class in by_code.items():
                app.error_handler_spec.setdefault(target(key), {}).setdefault(code, {}).update(
                    by_class
                )


def _join(prefix: str, rule: str) -> str:
    return "/".join((prefix.rstrip("/"), rule.lstrip("/")))

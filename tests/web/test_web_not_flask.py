"""What Flask has and uwsgiapp.web has not says so where it is asked for: a port met
``ImportError: cannot import name 'render_template'``, ``AttributeError: 'App' object has no
attribute 'teardown_appcontext'`` and ``TypeError: AppBase.__init__() got an unexpected keyword
argument 'template_folder'`` (an internal class)."""

from __future__ import annotations

import re

import pytest

import uwsgiapp.web as web


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            "render_template",
            "uwsgiapp.web has no render_template (Flask's): there are no templates",
        ),
        ("flash", "there is no flash()"),
        ("Flask", "the app class is App"),
        ("appcontext_pushed", "there are no signals"),
    ],
)
def test_flasks_names_say_what_stands_for_them(name: str, said: str) -> None:
    with pytest.raises(ImportError, match=re.escape(said)):
        exec(f"from uwsgiapp.web import {name}", {})
    with pytest.raises(ImportError, match="cannot import name 'nothing_such'"):
        exec("from uwsgiapp.web import nothing_such", {})
    assert not hasattr(web, "nothing_such")  # an AttributeError still, for other names
    # Read otherwise than by an import (hasattr, getattr with a default, mock's create=True):
    # an AttributeError, with the words (an ImportError broke those).
    assert not hasattr(web, name) and getattr(web, name, None) is None
    with pytest.raises(AttributeError, match=re.escape(said)):
        getattr(web, name)


@pytest.mark.parametrize(
    ("statement", "said"),
    [
        ("from uwsgiapp.web.views import MethodView", "has no views module (Flask's): there are"),
        ("import uwsgiapp.web.json", "has no json module (Flask's): there is no json module"),
        ("from uwsgiapp.web.globals import request_ctx", "the contexts are not exposed"),
    ],
)
def test_flasks_modules_say_what_stands_for_them(statement: str, said: str) -> None:
    # flask.views' import was a bare "No module named 'uwsgiapp.web.views'".
    with pytest.raises(ImportError, match=re.escape(said)):
        exec(statement, {})


def test_flasks_attributes_and_options_say_what_to_do() -> None:
    app = web.App(__name__)
    with pytest.raises(AttributeError, match=r"App has no teardown_appcontext .*teardown_request"):
        app.teardown_appcontext  # noqa: B018
    with pytest.raises(AttributeError, match="'App' object has no attribute 'nothing_such'"):
        app.nothing_such  # noqa: B018
    assert getattr(app, "cli", None) is None and not hasattr(app, "nothing_such")
    bp = web.Blueprint("b", __name__)
    with pytest.raises(AttributeError, match=r"Blueprint has no record .*hooks"):
        bp.record  # noqa: B018
    with pytest.raises(TypeError, match=r"App\(\) takes no template_folder \(Flask's\)"):
        web.App(__name__, template_folder="templates")
    with pytest.raises(TypeError, match=r"Blueprint\(\) takes no static_folder"):
        web.Blueprint("b", __name__, static_folder="st")
    with pytest.raises(TypeError, match=r"App\(\) got an unexpected keyword argument 'bogus'"):
        web.App(__name__, bogus=1)
    assert web.App(__name__, static_folder=None).static_folder is None  # the app's own
    assert web.App(__name__, static_folder=None).static_url_path is None  # as Flask's
    assert web.App(__name__, static_url_path="/s").static_url_path == "/s"
    assert app.static_url_path == "/static"
    with pytest.raises(AttributeError, match=r"App has no redirect \(Flask's\): use redirect"):
        app.redirect  # noqa: B018

    class Mine(web.App):
        @property
        def db(self) -> object:
            return self.extensions_db  # type: ignore[attr-defined]

    # The getter's own error, not one naming the property (the class's __getattr__ ran).
    with pytest.raises(AttributeError, match="'Mine' object has no attribute 'extensions_db'"):
        Mine(__name__).db  # noqa: B018


def test_an_invalid_return_value_is_named_with_its_article() -> None:
    app = web.App(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    app.route("/int", endpoint="int_")(lambda: 5)
    app.route("/list", endpoint="set_")(lambda: {1, 2})
    with pytest.raises(TypeError, match="returned an int, which is not a valid response"):
        app.test_client().get("/int")
    with pytest.raises(TypeError, match="returned a set, which is not a valid response"):
        app.test_client().get("/list")
    # What to return instead, as Flask's says it (the line named only what was wrong).
    with pytest.raises(TypeError, match=r"not a valid response: a view must return a str, bytes"):
        app.test_client().get("/int")

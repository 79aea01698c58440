"""Flask's ``flask.json`` has no counterpart here: importing this module says so, and what
to use instead."""

from uwsgiapp.web.notflask import flask_submodule

flask_submodule(__name__)

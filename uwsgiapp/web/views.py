"""Flask's ``flask.views`` (``View``, ``MethodView``) has no counterpart here: importing this
module says so, and what to write instead."""

from uwsgiapp.web.notflask import flask_submodule

flask_submodule(__name__)

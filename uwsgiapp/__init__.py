"""uwsgiapp: a pure-Python application container for nginx's uwsgi protocol."""

__version__ = "0.1.0"

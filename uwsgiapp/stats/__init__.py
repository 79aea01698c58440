"""Observability: a snapshot model of the server's numbers, uWSGI's stats JSON document, the
Prometheus text format, a non-blocking stats listener for the master, and ``uwsgiapp top``."""

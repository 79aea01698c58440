"""Helpers shared by the test suites: real nginx and real ``uwsgiapp serve`` processes."""

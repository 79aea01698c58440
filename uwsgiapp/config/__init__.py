"""Configuration for ``uwsgiapp serve``: one typed :class:`Config`, validated once; the
command line, ``UWSGIAPP_<OPTION>`` variables, ``--config`` TOML and ``--ini`` files only fill it.

* :mod:`~uwsgiapp.config.model` — :class:`Config`, :class:`ConfigError`, :func:`make_config`;
* :mod:`~uwsgiapp.config.configload` — the sources as layers of raw values, converted by each
  field's type and merged by precedence, remembering where each value came from;
* :mod:`~uwsgiapp.config.tomlfile` — a ``--config`` TOML file as one of those layers;
* :mod:`~uwsgiapp.config.uwsgiini` — a uWSGI ini file as another (values expanded by
  :mod:`~uwsgiapp.config.iniexpand`);
* :mod:`~uwsgiapp.config.serve` — ``serve``'s parsed arguments and environment to a Config.
"""

from uwsgiapp.config.model import (
    ACCESS_LOG_FORMATS,
    Config,
    ConfigError,
    make_config,
    option_fields,
)

__all__ = ["ACCESS_LOG_FORMATS", "Config", "ConfigError", "make_config", "option_fields"]

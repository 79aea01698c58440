"""``python -m uwsgiapp``: the same command line as the ``uwsgiapp`` script."""

from uwsgiapp.entry import main

if __name__ == "__main__":
    raise SystemExit(main())

"""The explorer: the ``/ui/`` page and its JSON API on the worker's web server, and ``kubectl-eventlog``.

``query`` is pure (filters in, search bodies out); ``handlers`` answers requests without a web
framework; ``web.install`` puts them on Faust's web server; ``command`` is the kubectl plugin.
"""

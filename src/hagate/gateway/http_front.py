"""The old import path of the HTTP front, now the package :mod:`hagate.gateway.http`.

Kept for the modules that still import from here (gateway/auth.py for ``AccessPolicy``,
tests/gateway/test_http_real.py); new code imports from :mod:`hagate.gateway.http`.
"""

from hagate.gateway.http import AccessPolicy, HttpFront, UpstreamPool

__all__ = ["AccessPolicy", "HttpFront", "UpstreamPool"]

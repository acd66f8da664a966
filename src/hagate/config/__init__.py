"""keepalived.conf: parser, typed model, lint and `hagate check`.

``load(path)`` returns ``(Config, findings)``; see :mod:`hagate.config.model`.
"""

from hagate.config.findings import Finding, Impact, Severity
from hagate.config.load import LoadResult, load

__all__ = ["Finding", "Impact", "LoadResult", "Severity", "load"]

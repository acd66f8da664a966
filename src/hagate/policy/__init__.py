"""The gateway's access policy: who may reach which device's service by which route.

Pure: no sockets, no clock (``now`` is passed in); files are read only by `load_policy`.
See docs/policy.md.
"""

from hagate.policy.model import (
    ANONYMOUS,
    AuthFailure,
    Decision,
    PolicyError,
    Principal,
    PrincipalKind,
    RouteKind,
)
from hagate.policy.policy import Policy, empty_policy, load_policy

__all__ = [
    "ANONYMOUS",
    "AuthFailure",
    "Decision",
    "Policy",
    "PolicyError",
    "Principal",
    "PrincipalKind",
    "RouteKind",
    "empty_policy",
    "load_policy",
]

"""The VRRP instance states (RFC 5798/9568 §6.4; FAULT and STOP are keepalived's)."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """State of one VRRP instance, named as keepalived logs them."""

    INITIALIZE = "INITIALIZE"  # RFC 9568 §6.4.1: before start()
    BACKUP = "BACKUP"  # RFC 9568 §6.4.2
    MASTER = "MASTER"  # RFC 9568 §6.4.3
    FAULT = "FAULT"  # keepalived: a tracked item of weight 0 (or the interface) is down
    STOP = "STOP"  # keepalived: after shutdown

    def __str__(self) -> str:
        return self.value

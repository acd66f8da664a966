"""Which event loop a hagate process runs on: uvloop's when installed, else asyncio's own.

The gateway's and the agent's per-request work is loop turns, timers and reader callbacks
(no asyncio transports: see :mod:`hagate.net.conn`), which uvloop does in C. Measured with
bench/tunnel.py: the gateway spends about a third less CPU per proxied request, the agent
about a fifth less (73 -> 58-64 us at 1 connection, 34 -> 29-30 us at 32). Set
``HAGATE_LOOP=asyncio`` to keep asyncio's loop (e.g. to debug with asyncio's debug mode).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop``, or None (``asyncio.Runner``'s default: asyncio's loop)."""
    if os.environ.get("HAGATE_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop

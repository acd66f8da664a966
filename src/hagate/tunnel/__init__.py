"""The tunnel protocol shared by gateway and agent: wire format, connection machine, registry.

Pure (sans-IO) code: no sockets, no clock. The gateway and the agent drive it from asyncio.
"""

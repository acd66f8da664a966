"""The HTTP(S) front: every request of a user connection parsed, routed by its own Host,
authorised, and forwarded over an upstream connection pooled per device.

A keep-alive connection is not bound to a device: nginx with upstream keep-alive (or any
client) may send requests for dev1 and dev2 on one connection, and each is answered by the
device its Host names. Upstream connections (data connections to a device's HTTP service) are
kept idle in a pool per (device, service) and reused.

Parser: httptools (llhttp, Node's parser) rather than h11. Measured on this machine (2 vCPU
EPYC, Python 3.11, one keep-alive GET of 5 headers and its 13-byte response): a full proxy
cycle (parse the request, serialise it, parse the response, serialise it) costs 84 µs with
h11 0.16 and 2.8 µs with httptools 0.9, against a budget of ~120 µs per request for the
gateway *and* the agent. Bodies are re-framed, never passed through raw: what the device sees
is exactly what llhttp parsed.

One module per reason to change:

==============  ===========================================================================
host            Host routing: ``<service>--<device>.<domain>``, which Hosts are refused
fields          which header fields are forwarded, dropped, or written by the gateway
answers         the gateway's own responses (refusals, timeouts)
request         a parsed request head, what is refused before routing, the head sent on
response        a device's response re-framed for the user, upstream reuse rules
access          the per-request decision: route, authenticate, policy, stream lease
clientip        who a request's client is behind trusted reverse proxies (X-Forwarded-For)
deadline        one lazy deadline per connection
pool            idle upstream connections per (device, service)
exchange        one request forwarded and its response brought back (I/O, flow control)
connection      one user connection: parser, request loop, lingering close
front           one listener: what its connections share
hub             what the front needs from the gateway (protocols)
==============  ===========================================================================
"""

from hagate.gateway.http.front import HttpFront
from hagate.gateway.http.host import SERVICE_SEP, HostError, Route, check_host, route_for
from hagate.gateway.http.hub import AccessPolicy, Hub, Lease
from hagate.gateway.http.pool import UpstreamPool

__all__ = [
    "SERVICE_SEP",
    "AccessPolicy",
    "HostError",
    "HttpFront",
    "Hub",
    "Lease",
    "Route",
    "UpstreamPool",
    "check_host",
    "route_for",
]

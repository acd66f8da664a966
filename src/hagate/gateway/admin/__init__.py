"""The node-local admin listener: ``/healthz`` for vrrp_script, ``/metrics`` for Prometheus, and
the JSON the operator's console reads (``/api/summary``, ``/api/devices``, ``/api/access``,
``/api/bans``, ``POST /api/devices/NAME/kick`` and ``.../unban``; docs/console.md).

It runs in a thread of its own, so that it answers within milliseconds even while the event
loop is busy with thousands of agents redialling after a failover (a slow answer would make
`hagate gateway check` fail and the new master lower its own priority). It still reports the
loop's health: the loop stamps ``tick`` on every heartbeat and a stale stamp means unhealthy.

One module per reason, from the socket inwards:

- ``listener``: the socket: ``AdminServer`` (config to a running thread), plain HTTP and TLS
  told apart by the first byte, the startup notes on who can reach it;
- ``limits``: how much of the listener one client can hold (connections per address and
  overall, loopback apart; the read timeout);
- ``handler``: one HTTP request: which paths are open, the gates ``/api/*`` must pass, the
  body's limits, the answer's headers;
- ``auth``: those gates: the bearer token, the Host check (no DNS rebinding), the refusal log;
- ``api``: the routes and the JSON they answer, in the listener's thread;
- ``views``: the only door into the gateway: every read and action runs in its event loop;
- ``book``: what this node remembers of each device (refreshed in the loop);
- ``paging``: the console's queries parsed, filtered and paged (pure, in the thread).

Every module logs to the one logger ``hagate.gateway.admin`` (the docs name it).
"""

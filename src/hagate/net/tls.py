"""TLS contexts (OpenSSL via ``ssl``) and the identity a peer's certificate carries."""

from __future__ import annotations

import functools
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from hagate.pki.ca import Role

PeerCert: TypeAlias = dict[str, Any]  # what SSLSocket.getpeercert() returns

log = logging.getLogger("hagate.net")


@dataclass(frozen=True, slots=True)
class Identity:
    role: Role
    name: str
    serial: int


def _load(ctx: ssl.SSLContext, cert: Path, key: Path, ca: Path | None) -> ssl.SSLContext:
    # A stream's end is passed on as a TCP half-close (FIN), as ssh -R does, not as TLS
    # close_notify (which Python cannot send without also waiting for the peer's): read it
    # as end of stream instead of an error.
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    try:
        ctx.load_cert_chain(cert, key)
        if ca is not None:
            ctx.load_verify_locations(ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load TLS files ({cert}, {key}, {ca}): {exc}") from None
    return ctx


def tunnel_server_context(
    cert: Path,
    key: Path,
    ca: Path,
    *,
    cluster: str | None = None,
    ticket_secret: Path | None = None,
) -> ssl.SSLContext:
    """Agents and users: TLS 1.3 with a client certificate from our CA required.

    With ``cluster`` (the name both nodes share: the gateway's domain), session tickets are
    encrypted with keys every node of the cluster derives from the same files (``ticket_secret``,
    by default the gateway's private key; see :mod:`hagate.net.tickets`), so an agent resumes
    on whichever node holds the VIP. Where that cannot be done safely, one log line says why
    and the context does full handshakes (``ctx.hagate_resumption`` is then False).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_TICKET
    _load(ctx, cert, key, ca)
    ctx.hagate_resumption = False  # type: ignore[attr-defined]
    if cluster is not None:
        from hagate.net.tickets import TicketsUnavailable, install

        try:
            install(ctx, ticket_secret or key, ca, cluster)
            ctx.hagate_resumption = True  # type: ignore[attr-defined]
        except TicketsUnavailable as exc:
            ctx.options |= ssl.OP_NO_TICKET
            log.warning("TLS resumption across nodes is off (%s): full handshakes only", exc)
    return ctx


def https_server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """Users' browsers: the wildcard certificate, TLS 1.2 or newer.

    With ``client_ca`` a browser may present a user certificate from the cluster's CA (it is
    asked for, not required): the access policy then knows the user without a password.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return _load(ctx, cert, key, client_ca)


def client_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """Agents and `connect`: verify the gateway against our CA, present our certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = True
    return _load(ctx, cert, key, ca)


def session_expired(
    sock: ssl.SSLSocket | ssl.SSLObject, now: float, cert: PeerCert | None = None
) -> bool:
    """A resumed session whose client certificate has expired since its full handshake.

    A resumption does not verify the certificate again (it is the one from the ticket), so
    the gateway checks its notAfter itself; the CRL and the policy are checked on every
    connection anyway. ``cert``: the ``getpeercert()`` already read for this connection
    (decoding it again costs tens of microseconds per reconnection in a storm).
    """
    if not sock.session_reused:
        return False
    if cert is None:
        cert = sock.getpeercert()
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        return True
    try:
        return now >= _not_after_seconds(not_after)
    except ValueError:
        return True


@functools.lru_cache(maxsize=65536)
def _not_after_seconds(not_after: str) -> float:
    """``ssl.cert_time_to_seconds`` (a strptime, ~6 us), once per distinct certificate time."""
    return float(ssl.cert_time_to_seconds(not_after))


def peer_identity(
    sock: ssl.SSLSocket | ssl.SSLObject, cert: PeerCert | None = None
) -> Identity | None:
    """Role (subject OU), name (CN) and serial of a verified client certificate."""
    if cert is None:
        cert = sock.getpeercert()
    if not cert:
        return None
    fields = {str(item[0]): str(item[1]) for rdn in cert.get("subject", ()) for item in rdn}
    ou, cn = fields.get("organizationalUnitName", ""), fields.get("commonName", "")
    roles = {r.ou: r for r in Role}
    serial = cert.get("serialNumber")
    if ou not in roles or not cn or not isinstance(serial, str):
        return None
    return Identity(roles[ou], str(cn), int(serial, 16))

"""TLS 1.3 session tickets that either gateway node can decrypt, from the files both share.

Why: after a failover every agent redials the other node at once, and a full handshake with
client certificates costs the gateway ~0.6 ms of OpenSSL 3 CPU (verifying the client's
chain is most of it). A resumed handshake skips both certificates and both signatures. For
an agent to resume on the *other* node, both nodes must encrypt tickets with the same keys;
they have no shared database, only the same files. So the keys are derived (HKDF-SHA256)
from a secret both nodes hold (the gateway's private key, or a dedicated ``ticket_secret``
file), bound to the cluster's CA certificate and name, per time epoch: tickets are issued
under the current epoch's key, and the previous and next epochs' keys are accepted too (a
rotation, or two nodes' clocks on either side of a boundary, costs no resumption).

The standard library's ``ssl`` has no API for ticket keys, so :func:`install` reaches the
``SSL_CTX`` of an :class:`ssl.SSLContext` with :mod:`ctypes` and sets
``SSL_CTX_set_tlsext_ticket_key_evp_cb`` (OpenSSL 3), using the very libssl that the
``_ssl`` module is linked against. Every assumption is checked first (library version,
pointer identity by reading back values set through Python's own API), and a self-test
resumes a session across two throwaway contexts in memory. If anything does not match,
:class:`TicketsUnavailable` says why and the caller keeps full handshakes (stateful
tickets, as before): resumption is an optimisation, never a requirement.

A resumed session carries the client certificate that was verified in its full handshake
(OpenSSL puts it in the ticket), so the gateway still knows who the peer is; the CRL and the
policy are applied by the caller on every connection, resumed or not, and the certificate's
expiry too (:func:`hagate.net.tls.session_expired`). Whoever holds the ticket keys could
mint a ticket for any identity: the secret they come from must be as private as the CA key
would be for devices (see docs/tls.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("hagate.net")

EPOCH_S = 3 * 86400  # a key is used to issue tickets for this long
LIFETIME_S = 2 * EPOCH_S  # a ticket is accepted this long (the previous epoch's key too)
INFO = b"hagate tls13 session ticket keys v1"
NAME_LEN, MAC_LEN, AES_LEN = 16, 32, 32
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_SESS_CACHE_OFF = 0


class TicketsUnavailable(Exception):
    """Shared tickets cannot be installed here (the message says why); full handshakes."""


@dataclass(frozen=True, slots=True)
class TicketKey:
    """One epoch's key: the 16-byte name a ticket carries, its HMAC and AES keys."""

    epoch: int
    name: bytes
    mac: bytes
    aes: bytes


def derive_key(secret: bytes, ca_der: bytes, cluster: str, epoch: int) -> TicketKey:
    """The ticket key of ``epoch``: the same on every node with the same files (pure)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"\0".join([INFO, cluster.encode(), epoch.to_bytes(8, "big")])
    salt = hashlib.sha256(ca_der).digest()
    okm = HKDF(hashes.SHA256(), NAME_LEN + MAC_LEN + AES_LEN, salt, info).derive(secret)
    return TicketKey(epoch, okm[:NAME_LEN], okm[NAME_LEN:-AES_LEN], okm[-AES_LEN:])


def epoch_of(now: float) -> int:
    return int(now // EPOCH_S)


def shared_secret(key_file: Path) -> bytes:
    """The private key of ``key_file`` in a canonical encoding (PEM layout does not matter)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise TicketsUnavailable(f"cannot read the ticket secret {key_file}: {exc}") from None
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ca_fingerprint_input(ca_file: Path) -> bytes:
    """DER of the CA certificate(s) in ``ca_file`` (binds the keys to this cluster's CA)."""
    try:
        pem = ca_file.read_text()
    except OSError as exc:
        raise TicketsUnavailable(f"cannot read {ca_file}: {exc}") from None
    blocks = [b for b in pem.split("-----END CERTIFICATE-----") if "BEGIN CERTIFICATE" in b]
    if not blocks:
        raise TicketsUnavailable(f"{ca_file} holds no certificate")
    return b"".join(ssl.PEM_cert_to_DER_cert(b + "-----END CERTIFICATE-----\n") for b in blocks)


# ------------------------------------------------------------------ OpenSSL binding


class _Param(ctypes.Structure):
    """OSSL_PARAM (openssl/core.h)."""

    _fields_ = [
        ("key", ctypes.c_char_p),
        ("data_type", ctypes.c_uint),
        ("data", ctypes.c_void_p),
        ("data_size", ctypes.c_size_t),
        ("return_size", ctypes.c_size_t),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # SSL *
    ctypes.c_void_p,  # unsigned char key_name[16]
    ctypes.c_void_p,  # unsigned char iv[16]
    ctypes.c_void_p,  # EVP_CIPHER_CTX *
    ctypes.c_void_p,  # EVP_MAC_CTX *
    ctypes.c_int,  # enc
)


class _LibSSL:
    """The functions used, from the libssl/libcrypto that ``_ssl`` itself is linked with."""

    def __init__(self) -> None:
        import _ssl

        path = getattr(_ssl, "__file__", None)
        if path is None:
            raise TicketsUnavailable("the _ssl module is built in (no library to bind)")
        try:
            # RTLD_NOLOAD: the copy already in this process, symbols looked up from _ssl's
            # own dependencies: exactly the OpenSSL whose SSL_CTX the SSLContext holds.
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError as exc:
            raise TicketsUnavailable(f"cannot bind {path}: {exc}") from None
        try:
            self.version = lib.OpenSSL_version_num
            self.version.restype = ctypes.c_ulong
            self.version.argtypes = []
            if self.version() != ssl.OPENSSL_VERSION_NUMBER:
                raise TicketsUnavailable(
                    f"libssl {self.version():#x} is not the one ssl reports "
                    f"({ssl.OPENSSL_VERSION_NUMBER:#x})"
                )
            if ssl.OPENSSL_VERSION_INFO < (3, 0):
                raise TicketsUnavailable(f"{ssl.OPENSSL_VERSION}: OpenSSL 3 needed")
            vp, sz, i, u = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint64
            self.set_cb = self._fn(lib, "SSL_CTX_set_tlsext_ticket_key_evp_cb", i, vp, _CALLBACK)
            self.set_timeout = self._fn(
                lib, "SSL_CTX_set_timeout", ctypes.c_long, vp, ctypes.c_long
            )
            self.get_timeout = self._fn(lib, "SSL_CTX_get_timeout", ctypes.c_long, vp)
            self.get_num_tickets = self._fn(lib, "SSL_CTX_get_num_tickets", sz, vp)
            self.get_options = self._fn(lib, "SSL_CTX_get_options", u, vp)
            self.get_verify_mode = self._fn(lib, "SSL_CTX_get_verify_mode", i, vp)
            self.ctrl = self._fn(lib, "SSL_CTX_ctrl", ctypes.c_long, vp, i, ctypes.c_long, vp)
            self.aes = self._fn(lib, "EVP_aes_256_cbc", vp)
            init = (i, vp, vp, vp, vp, vp)
            self.encrypt_init = self._fn(lib, "EVP_EncryptInit_ex", *init)
            self.decrypt_init = self._fn(lib, "EVP_DecryptInit_ex", *init)
            self.mac_set_params = self._fn(lib, "EVP_MAC_CTX_set_params", i, vp, vp)
            self.octets = self._fn(lib, "OSSL_PARAM_construct_octet_string", _Param, vp, vp, sz)
            self.utf8 = self._fn(lib, "OSSL_PARAM_construct_utf8_string", _Param, vp, vp, sz)
            self.end = self._fn(lib, "OSSL_PARAM_construct_end", _Param)
            self.rand = self._fn(lib, "RAND_bytes", i, vp, i)
        except AttributeError as exc:
            raise TicketsUnavailable(f"libssl lacks a function: {exc}") from None
        self.cipher = self.aes()
        if not self.cipher:
            raise TicketsUnavailable("EVP_aes_256_cbc() is NULL")

    @staticmethod
    def _fn(lib: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> Any:
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)
        return f


_lib: _LibSSL | None = None
_self_test: str | None = None  # "" passed, else why it failed


def _libssl() -> _LibSSL:
    global _lib
    if _lib is None:
        _lib = _LibSSL()
    return _lib


def ssl_ctx_pointer(ctx: ssl.SSLContext, lib: _LibSSL) -> int:
    """The ``SSL_CTX *`` inside ``ctx``, proved by reading back what Python set through it.

    CPython's context object is ``{PyObject_HEAD; SSL_CTX *ctx; ...}``; the head's size is
    ``object.__basicsize__``. Reading a wrong word would be caught below before any write.
    """
    import _ssl

    if sys.implementation.name != "cpython" or not isinstance(ctx, _ssl._SSLContext):
        raise TicketsUnavailable("not CPython's ssl.SSLContext")
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        raise TicketsUnavailable("no SSL_CTX in the context")
    mode = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]
    if lib.get_options(ptr) != int(ctx.options) or lib.get_verify_mode(ptr) != mode:
        raise TicketsUnavailable("the SSL_CTX found does not hold the context's settings")
    saved = ctx.num_tickets
    try:
        for probe in (7, 3):  # set through Python, read through ctypes
            ctx.num_tickets = probe
            if lib.get_num_tickets(ptr) != probe:
                raise TicketsUnavailable("the SSL_CTX found is not the context's")
    finally:
        ctx.num_tickets = saved
    return ptr


@dataclass
class TicketKeys:
    """The keys of one context: derived per epoch on demand, looked up by ticket key name."""

    secret: bytes
    ca_der: bytes
    cluster: str
    clock: Callable[[], float] = time.time
    _keys: dict[int, TicketKey] = field(default_factory=dict)
    errors: int = 0

    def key(self, epoch: int) -> TicketKey:
        k = self._keys.get(epoch)
        if k is None:
            for old in [e for e in self._keys if abs(e - epoch) > 2]:
                del self._keys[old]
            k = self._keys[epoch] = derive_key(self.secret, self.ca_der, self.cluster, epoch)
        return k

    def current(self) -> TicketKey:
        return self.key(epoch_of(self.clock()))

    def find(self, name: bytes) -> TicketKey | None:
        """The accepted key named ``name``: this epoch's, the previous or the next one's."""
        now = epoch_of(self.clock())
        for epoch in (now, now - 1, now + 1):
            k = self.key(epoch)
            if k.name == name:
                return k
        return None


@dataclass
class Installed:
    """What :func:`install` put on a context; kept on it so the callback outlives no one."""

    keys: TicketKeys
    callback: object
    params: dict[int, tuple[object, object, object]]


def _mac_params(lib: _LibSSL, key: TicketKey) -> tuple[object, object, object]:
    mac = ctypes.create_string_buffer(key.mac, len(key.mac))
    digest = ctypes.create_string_buffer(b"SHA256")
    arr = (_Param * 3)(
        lib.octets(b"key", ctypes.cast(mac, ctypes.c_void_p), len(key.mac)),
        lib.utf8(b"digest", ctypes.cast(digest, ctypes.c_void_p), 0),
        lib.end(),
    )
    return arr, mac, digest


def _install(ctx: ssl.SSLContext, keys: TicketKeys, lib: _LibSSL) -> Installed:
    ptr = ssl_ctx_pointer(ctx, lib)
    params: dict[int, tuple[object, object, object]] = {}

    def params_of(key: TicketKey) -> object:
        p = params.get(key.epoch)
        if p is None:
            for old in [e for e in params if abs(e - key.epoch) > 2]:
                del params[old]
            p = params[key.epoch] = _mac_params(lib, key)
        return p[0]

    def callback(
        _ssl: int | None,
        name: int | None,
        iv: int | None,
        cctx: int | None,
        hctx: int | None,
        enc: int,
    ) -> int:
        # Never raises into OpenSSL: 0 means "no ticket" (issuing) or "unknown, do a full
        # handshake" (accepting), which is always safe.
        try:
            if enc:
                key = keys.current()
                if not (name and iv):
                    return 0
                ctypes.memmove(name, key.name, NAME_LEN)
                if lib.rand(iv, 16) != 1:
                    return 0
                if lib.encrypt_init(cctx, lib.cipher, None, key.aes, iv) != 1:
                    return 0
                if lib.mac_set_params(hctx, params_of(key)) != 1:
                    return 0
                return 1
            if not name:
                return 0
            found = keys.find(ctypes.string_at(name, NAME_LEN))
            if found is None:
                return 0
            if lib.mac_set_params(hctx, params_of(found)) != 1:
                return 0
            if lib.decrypt_init(cctx, lib.cipher, None, found.aes, iv) != 1:
                return 0
            return 1 if found.epoch == epoch_of(keys.clock()) else 2  # 2: issue a fresh one
        except Exception:  # a failed callback must not fail the handshake
            keys.errors += 1
            return 0

    cb = _CALLBACK(callback)
    if lib.set_cb(ptr, cb) != 1:
        raise TicketsUnavailable("SSL_CTX_set_tlsext_ticket_key_evp_cb failed")
    lib.set_timeout(ptr, LIFETIME_S)
    # Stateless tickets need no server-side cache: none to fill with every agent's session.
    lib.ctrl(ptr, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, None)
    installed = Installed(keys, cb, params)
    ctx.hagate_tickets = installed  # type: ignore[attr-defined]  # keeps cb alive with ctx
    return installed


def self_test() -> None:
    """Resume across two in-memory contexts with one secret, not with another; or raise."""
    global _self_test
    if _self_test is None:
        try:
            _run_self_test()
            _self_test = ""
        except TicketsUnavailable as exc:
            _self_test = str(exc)
        except (ssl.SSLError, OSError, ValueError) as exc:
            _self_test = f"self-test failed: {exc}"
    if _self_test:
        raise TicketsUnavailable(_self_test)


def _run_self_test() -> None:
    import datetime as dt
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    lib = _libssl()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=5))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("self-test")]), False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory(prefix="hagate-tickets-") as tmp:
        cert_file, key_file = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cert_file.write_bytes(pem)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

        def server(secret: bytes) -> ssl.SSLContext:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.load_cert_chain(cert_file, key_file)
            _install(ctx, TicketKeys(secret, pem, "self-test"), lib)
            return ctx

        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cadata=pem.decode())
        one, two, other = server(b"a" * 32), server(b"a" * 32), server(b"b" * 32)
    session, reused = memory_handshake(one, client, None, "self-test")
    if session is None or reused:
        raise TicketsUnavailable("self-test: no ticket from a full handshake")
    if memory_handshake(two, client, session, "self-test")[1] is not True:
        raise TicketsUnavailable("self-test: a session did not resume on a twin context")
    if memory_handshake(other, client, session, "self-test")[1] is not False:
        raise TicketsUnavailable("self-test: a session resumed with another secret")
    if any(c.hagate_tickets.keys.errors for c in (one, two, other)):  # type: ignore[attr-defined]
        raise TicketsUnavailable("self-test: the ticket callback failed")


def memory_handshake(
    server: ssl.SSLContext,
    client: ssl.SSLContext,
    session: ssl.SSLSession | None,
    hostname: str,
) -> tuple[ssl.SSLSession | None, bool]:
    """A handshake over memory BIOs: (the client's newest session, server says resumed)."""
    sin, sout, cin, cout = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(sin, sout, server_side=True)
    cli = client.wrap_bio(cin, cout, server_hostname=hostname, session=session)
    done = [False, False]
    for _ in range(8):
        for i, obj in enumerate((cli, srv)):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            sin.write(cout.read())
            cin.write(sout.read())
        if all(done):
            break
    if not all(done):
        raise TicketsUnavailable("self-test: the in-memory handshake did not finish")
    with contextlib.suppress(ssl.SSLWantReadError):
        cli.read(1)  # takes in the NewSessionTicket
    return cli.session, srv.session_reused


def install(ctx: ssl.SSLContext, secret_file: Path, ca_file: Path, cluster: str) -> Installed:
    """Give ``ctx`` the cluster's shared ticket keys, or raise TicketsUnavailable (why)."""
    if not hasattr(os, "RTLD_NOLOAD"):
        raise TicketsUnavailable("this platform has no RTLD_NOLOAD")
    self_test()
    keys = TicketKeys(shared_secret(secret_file), ca_fingerprint_input(ca_file), cluster)
    ctx.options &= ~ssl.OP_NO_TICKET
    ctx.num_tickets = 1  # one is enough: a stateless ticket may be offered again
    return _install(ctx, keys, _libssl())

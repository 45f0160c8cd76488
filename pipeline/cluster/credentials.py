"""The local cluster's TLS credentials: a key and a self-signed certificate made for one run.

Scheduler, workers and client present the same certificate and trust only it, so only the
process that made it (and the workers it gives it to) can connect. Both live only in memory,
in the `Security` object, which hands them to each process as PEM text. This is what
`distributed.security.Security.temporary()` does, with an elliptic-curve key (P-256): made in
well under a millisecond, where a 2048-bit RSA key takes 25-150 ms, all of it on the path to
the first image. Nothing here does any work at import time.
"""

from __future__ import annotations

import datetime
from typing import Any

NAME = "dask-internal"  # the name Dask's own temporary certificates carry
VALID_FOR = datetime.timedelta(days=365)  # a --keep-alive dashboard may stay up for long


def run_security() -> Any:
    """A `distributed.security.Security` that requires TLS with a new key and certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from distributed.security import Security

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALID_FOR)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    roles = {f"tls_{role}_{part}": pem for role in ("client", "scheduler", "worker")
             for part, pem in (("key", key_pem), ("cert", cert_pem))}  # fmt: skip
    return Security(require_encryption=True, tls_ca_file=cert_pem, **roles)

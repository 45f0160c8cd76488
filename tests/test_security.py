"""Security: the local cluster listens on loopback only; a TLS-secured scheduler works."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import psutil
import pytest
from conftest import run_cli, save_image
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dask_procs import DaskProcs, dask_cluster_procs

from pipeline.config import RunOptions
from pipeline.runner import run_pipeline


def test_local_credentials_are_one_new_p256_key_for_every_role() -> None:
    """The local cluster's key and certificate: made anew each time, the same for scheduler,
    workers and client, and the certificate is the only one trusted."""
    from pipeline.cluster.credentials import run_security

    one, other = run_security(), run_security()
    assert one.require_encryption
    key = serialization.load_pem_private_key(one.tls_scheduler_key.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    roles = ("client", "scheduler", "worker")
    assert {getattr(one, f"tls_{role}_key") for role in roles} == {one.tls_scheduler_key}
    assert {getattr(one, f"tls_{role}_cert") for role in roles} == {one.tls_ca_file}
    assert one.tls_scheduler_key != other.tls_scheduler_key


def listening_addresses() -> set[str]:
    """IP addresses this process and its children listen on (TCP)."""
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        for conn in proc.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                found.add(conn.laddr.ip)
    return found


def test_local_cluster_and_dashboard_listen_on_loopback_only(tmp_path: Path) -> None:
    save_image(tmp_path / "in" / "a.png", (40, 30))
    seen: dict[str, Any] = {}

    def on_connect(client: Any) -> None:
        seen["addresses"] = listening_addresses()
        seen["scheduler"] = client.scheduler.address
        seen["workers"] = list(client.scheduler_info()["workers"])

    opts = RunOptions(input=tmp_path / "in", output=tmp_path / "out", workers=2)
    report = run_pipeline(opts, on_connect=on_connect)
    assert report.counts["ok"] == 1
    assert seen["addresses"] == {"127.0.0.1"}
    assert seen["scheduler"].startswith("tls://127.0.0.1:")
    assert len(seen["workers"]) == 2
    assert all(w.startswith("tls://127.0.0.1:") for w in seen["workers"])


def write_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA and one certificate (server and client use) for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pipeline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def tls_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaskProcs, dict[str, Path]]]:
    certs = write_certificates(tmp_path_factory.mktemp("certs"))
    flags = ["--tls-ca-file", str(certs["ca"]), "--tls-cert", str(certs["cert"]),
             "--tls-key", str(certs["key"])]  # fmt: skip
    client_tls = {
        "distributed.comm.tls.ca-file": str(certs["ca"]),
        "distributed.comm.tls.client.cert": str(certs["cert"]),
        "distributed.comm.tls.client.key": str(certs["key"]),
        "distributed.comm.require-encryption": True,
    }
    with (
        dask.config.set(client_tls),
        dask_cluster_procs(
            nworkers=2, scheduler_args=["--protocol", "tls", *flags], worker_args=flags
        ) as procs,
    ):
        assert procs.address.startswith("tls://127.0.0.1:")
        yield procs, certs


def test_tls_scheduler_with_certificate_flags(
    tls_cluster: tuple[DaskProcs, dict[str, Path]], tree: Path, tmp_path: Path
) -> None:
    procs, certs = tls_cluster
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out", "--scheduler",
                     procs.address, "--tls-ca-file", certs["ca"], "--tls-cert", certs["cert"],
                     "--tls-key", certs["key"], report=tmp_path / "r.json")  # fmt: skip
    assert result.code == 0, result.stderr + procs.log_text()
    assert result.report is not None
    assert result.report["summary"]["ok"] == 6


def test_tls_scheduler_with_certificates_from_dask_config(
    tls_cluster: tuple[DaskProcs, dict[str, Path]], tree: Path, tmp_path: Path
) -> None:
    procs, certs = tls_cluster
    env = {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certs["ca"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(certs["cert"]),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(certs["key"]),
        "DASK_SCHEDULER_ADDRESS": procs.address,
    }
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out", env=env)
    assert result.code == 0, result.stderr
    assert "done: 6 images: 6 ok" in result.stdout


def test_tls_scheduler_without_certificates_is_a_clear_usage_error(
    tls_cluster: tuple[DaskProcs, dict[str, Path]], tree: Path, tmp_path: Path
) -> None:
    procs, _ = tls_cluster
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out", "--scheduler",
                     procs.address, "--connect-timeout", "5")  # fmt: skip
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pipeline: error: cannot reach Dask scheduler at {procs.address}")

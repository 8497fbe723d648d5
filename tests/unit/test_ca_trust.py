"""The CA directory the Azure SDKs trust (``service.adapters.trust``): it trusts exactly what its
bundle trusts, and a TLS handshake with it reads one certificate, not the bundle (azureml-core
makes a new connection for every call: with certifi's bundle as a file each one parsed ~120
certificates, ~20 ms of CPU)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import certifi
import pytest
import requests

from emulator.tls import CertificateAuthority
from service.adapters import trust


def _ca(directory: Path) -> CertificateAuthority:
    # Every CertificateAuthority.create() has the subject "Azure emulator test CA": two of them
    # share OpenSSL's subject hash, as re-issued roots do.
    return CertificateAuthority.create(directory)


@contextmanager
def _server(ca: CertificateAuthority, directory: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 with a leaf of ``ca``; answers handshakes until the end."""
    cert, key = ca.issue_server_cert(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _handshake(port: int, *, capath: str | None = None, cafile: str | None = None) -> int:
    """Connect with a context trusting ``capath``/``cafile`` only; the CA certificates the
    context holds after the handshake (raises if the server's certificate is not trusted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=cafile, capath=capath)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"x")
    return int(context.cert_store_stats()["x509_ca"])


def _bundle(path: Path, *parts: bytes) -> str:
    path.write_bytes(b"\n".join(parts))
    return str(path)


def test_the_directory_trusts_what_the_bundle_trusts_and_a_handshake_reads_one_certificate(
    tmp_path: Path,
) -> None:
    ours, stranger = _ca(tmp_path / "ours"), _ca(tmp_path / "stranger")
    public = Path(certifi.where()).read_bytes()
    bundle = _bundle(tmp_path / "bundle.pem", public, ours.ca_path.read_bytes())
    directory = trust.ca_location(bundle)
    assert os.path.isdir(directory)
    in_bundle = len(trust._PEM.findall(Path(bundle).read_bytes()))
    assert len(os.listdir(directory)) == in_bundle > 100

    with _server(ours, tmp_path / "leaf") as port:
        assert _handshake(port, capath=directory) == 1  # the issuer's file, read when needed
        assert _handshake(port, cafile=bundle) == in_bundle  # the whole file, every connection
    with (
        _server(stranger, tmp_path / "stranger-leaf") as port,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        _handshake(port, capath=directory)


def test_certificates_sharing_a_subject_are_all_kept_and_duplicates_once(tmp_path: Path) -> None:
    first, second = _ca(tmp_path / "first"), _ca(tmp_path / "second")
    bundle = _bundle(
        tmp_path / "bundle.pem",
        first.ca_path.read_bytes(),
        second.ca_path.read_bytes(),
        first.ca_path.read_bytes(),
    )
    directory = trust.ca_location(bundle)
    names = sorted(os.listdir(directory))
    assert len(names) == 2
    assert names[0].split(".")[0] == names[1].split(".")[0]
    assert [n.split(".")[1] for n in names] == ["0", "1"]
    for n, ca in enumerate((first, second)):
        with _server(ca, tmp_path / f"leaf-{n}") as port:
            assert _handshake(port, capath=directory) >= 1


@pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="the openssl command (its `rehash` names the files) is not installed; the "
    "handshake tests above check the same names by use",
)
def test_the_names_are_the_ones_openssl_rehash_gives(tmp_path: Path) -> None:
    source = certifi.where()
    directory = trust.ca_location(source)
    split = tmp_path / "split"
    split.mkdir()
    for i, pem in enumerate(trust._PEM.findall(Path(source).read_bytes())):
        (split / f"c{i}.pem").write_bytes(pem + b"\n")
    subprocess.run(["openssl", "rehash", str(split)], check=True)
    theirs = {n for n in os.listdir(split) if re.fullmatch(r"[0-9a-f]{8}\.\d+", n)}
    assert set(os.listdir(directory)) == theirs


def test_the_directory_is_built_once_and_again_when_the_bundle_changes(tmp_path: Path) -> None:
    first, second = _ca(tmp_path / "first"), _ca(tmp_path / "second")
    path = tmp_path / "bundle.pem"
    bundle = _bundle(path, first.ca_path.read_bytes())
    directory = trust.ca_location(bundle)
    assert trust.ca_location(bundle) == directory
    _bundle(path, first.ca_path.read_bytes(), second.ca_path.read_bytes())
    changed = trust.ca_location(bundle)
    assert changed != directory
    assert len(os.listdir(changed)) == 2


def test_what_cannot_be_read_as_certificates_is_used_as_it_was_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = _bundle(tmp_path / "garbage.pem", b"not a certificate")
    broken = _bundle(
        tmp_path / "broken.pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    )
    with caplog.at_level(logging.WARNING, logger="service.adapters.trust"):
        assert trust.ca_location(garbage) == garbage
        assert trust.ca_location(broken) == broken
    assert "used as a file" in caplog.text
    assert trust.ca_location(str(tmp_path)) == str(tmp_path)  # already a directory
    missing = str(tmp_path / "missing.pem")
    assert trust.ca_location(missing) == missing  # the SDK reports it, as it always did


def test_without_a_writable_temporary_directory_the_bundle_is_used_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only container: the SDKs still get a trust that works, only the slower one."""
    bundle = _bundle(tmp_path / "bundle.pem", _ca(tmp_path / "ca").ca_path.read_bytes())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, logger="service.adapters.trust"):
        assert trust.ca_location(bundle) == bundle
    assert "used as a file" in caplog.text


def test_the_source_is_the_configured_bundle_then_what_requests_reads_then_certifi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/from/requests.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/from/curl.pem")
    assert trust.default_source("/configured.pem") == "/configured.pem"
    assert trust.default_source(None) == "/from/requests.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert trust.default_source(None) == "/from/curl.pem"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert trust.default_source(None) == certifi.where()


def test_requests_sessions_that_read_the_environment_get_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azureml-core's sessions: ``requests.Session()`` with ``verify`` left to the environment."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    bundle = _bundle(tmp_path / "bundle.pem", _ca(tmp_path / "ca").ca_path.read_bytes())
    directory = trust.ca_location(bundle)
    trust.export_to_requests(directory)
    assert os.path.isdir(directory)
    assert os.environ["REQUESTS_CA_BUNDLE"] == directory
    settings = requests.Session().merge_environment_settings(
        "https://management.azure.com/", {}, None, None, None
    )
    assert settings["verify"] == directory
    assert trust.ca_location(None) == directory  # the environment now names it


def test_of_two_threads_building_at_once_the_later_keeps_the_earlier_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = _bundle(tmp_path / "bundle.pem", _ca(tmp_path / "ca").ca_path.read_bytes())
    build = trust._build
    built: list[str] = []
    earlier: list[str] = []

    def racing(source: str) -> str:
        mine = build(source)
        built.append(mine)
        if len(built) == 1:  # another thread finishes its build while this one builds
            earlier.append(trust.ca_location(source))
        return mine

    monkeypatch.setattr(trust, "_build", racing)
    assert trust.ca_location(bundle) == earlier[0] == built[1]
    assert not os.path.exists(built[0])  # the later build's directory is gone
    assert trust.ca_location(bundle) == earlier[0]

"""Throwaway X.509 material: the emulator's TLS CA and leaf, and client certificates.

One `CertificateAuthority` is meant to live for a whole test session (or a standalone run) and sign
the leaf certificate of every emulator instance, so clients set `REQUESTS_CA_BUNDLE` once.
TLS keys are EC P-256 (fast to generate); client certificates for Entra certificate credentials are
RSA because Entra's client assertions are RS256/PS256.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)
_DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A self-signed CA that issues server certificates for emulator instances."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca_path: Path):
        self._key = key
        self._cert = cert
        self.ca_path = ca_path

    @classmethod
    def create(cls, directory: Path | str) -> CertificateAuthority:
        """Generate a CA and write its certificate to `directory/ca.pem`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name("Azure emulator test CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        ca_path = directory / "ca.pem"
        ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, ca_path)

    def issue_server_cert(
        self, directory: Path | str, hosts: tuple[str, ...] = _DEFAULT_HOSTS
    ) -> tuple[Path, Path]:
        """Issue a leaf certificate for `hosts`; return (cert_path, key_path) under `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = f"server-{cert.serial_number:x}"[:24]
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        # The chain file carries the leaf only: clients trust the CA file directly.
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return cert_path, key_path


@dataclass(frozen=True)
class ClientCertificate:
    """An RSA certificate for an Entra certificate credential (private key + public cert)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def combined_pem(self) -> bytes:
        """Key and certificate in one PEM, the form `CertificateCredential` reads."""
        return self.key_pem + self.cert_pem

    @property
    def sha1_thumbprint(self) -> str:
        """Upper-case hex SHA-1 thumbprint, as the Azure portal shows it."""
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return cert.fingerprint(hashes.SHA1()).hex().upper()


def generate_client_certificate(common_name: str = "emulator-client") -> ClientCertificate:
    """Create a self-signed RSA-2048 certificate for a service principal."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .sign(key, hashes.SHA256())
    )
    return ClientCertificate(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def certificate_thumbprints(cert_pem: bytes) -> tuple[str, str]:
    """Return the base64url (x5t, x5t#S256) header values for a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)

    def b64(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    return b64(cert.fingerprint(hashes.SHA1())), b64(cert.fingerprint(hashes.SHA256()))

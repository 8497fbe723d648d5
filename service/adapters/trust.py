"""The CA certificates the Azure SDKs trust, as a hashed directory OpenSSL reads lazily.

A CA *file* is parsed in full each time a TLS connection is made with it (OpenSSL 3 reads a
PEM bundle slowly: certifi's ~120 roots cost ~20-36 ms of CPU per connection here). The SDKs
that keep their connections (azure-core, msal) pay that once per connection; azureml-core opens
a new ``requests`` session, so a new connection, for every Model Management call, and paid it
on every call (6-7 per web service reconciled). A *directory* in OpenSSL's ``capath`` layout
(one certificate per file, named by its subject's hash) costs nothing to load: at a handshake
OpenSSL reads only the file of the issuer it looks for.

``ca_location`` turns the trust the SDKs would use (``AZURE_CA_BUNDLE``; else what ``requests``
takes from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; else certifi's bundle) into such a directory,
once per process and source, holding exactly the certificates of that source. A directory given
as the source is used as it is. When the source cannot be read as PEM certificates, the source
itself is returned (correct, only slower) and a warning logged.

``export_to_requests`` points ``REQUESTS_CA_BUNDLE`` at it: azureml-core has no other setting for
its trust, so without this it ignored ``AZURE_CA_BUNDLE`` and used certifi.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)
# source path -> (its size and mtime when read, the directory built from it or the source).
# No lock: the import thread of a gevent worker warms it (a gevent lock shared with an OS thread
# is what gunicorn.conf.py had to replace for logging). The adapters build it in their
# constructors, which ``bootstrap.Lazy`` runs once, so threads rarely race here; two that do
# each build a directory, and the later one removes its own.
_built: dict[str, tuple[tuple[int, int], str]] = {}


def default_source(ca_bundle: str | None) -> str:
    """The CA file or directory the SDKs trust: the configured bundle, else what ``requests``
    reads from the environment, else certifi's bundle."""
    if ca_bundle:
        return ca_bundle
    from_env = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if from_env:
        return from_env
    import certifi

    return str(certifi.where())


def ca_location(ca_bundle: str | None) -> str:
    """A path for ``verify``/``connection_verify`` that trusts what ``default_source`` names:
    a hashed directory built from it (once per process while the file is unchanged)."""
    source = default_source(ca_bundle)
    if os.path.isdir(source):
        return source
    try:
        stat = os.stat(source)
    except OSError:
        return source  # the SDK reports the missing file as it always did
    version = (stat.st_size, stat.st_mtime_ns)
    known = _built.get(source)
    if known is not None and known[0] == version:
        return known[1]
    location = _build(source)
    known = _built.get(source)
    if known is not None and known[0] == version:  # another thread built it meanwhile
        if location != source:
            shutil.rmtree(location, ignore_errors=True)
        return known[1]
    _built[source] = (version, location)
    return location


def export_to_requests(location: str) -> None:
    """Make ``requests`` sessions that read the environment (azureml-core's) trust
    ``location`` (a ``ca_location``)."""
    if os.environ.get("REQUESTS_CA_BUNDLE") != location:
        os.environ["REQUESTS_CA_BUNDLE"] = location


def _build(source: str) -> str:
    directory = None
    try:
        pems = _PEM.findall(Path(source).read_bytes())
        if not pems:
            raise ValueError("no PEM certificate in it")
        names = _hashed_names(pems)
        directory = tempfile.mkdtemp(prefix="amlcp-ca-")  # 0700, this process's user
        for name, pem in names.items():
            with open(os.path.join(directory, name), "wb") as out:
                out.write(pem + b"\n")
    except (OSError, ValueError) as exc:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        log.warning(
            "CA bundle %s used as a file (each new TLS connection parses it): %s", source, exc
        )
        return source
    atexit.register(_remove, directory, os.getpid())
    log.debug("CA bundle %s: %d certificates in %s", source, len(names), directory)
    return directory


def _hashed_names(pems: list[bytes]) -> dict[str, bytes]:
    """OpenSSL's ``capath`` names (``<subject hash>.<n>``, as ``openssl rehash`` gives) of each
    distinct certificate."""
    from OpenSSL import crypto  # the hash OpenSSL itself computes (X509_NAME_hash)

    names: dict[str, bytes] = {}
    seen: set[bytes] = set()
    for pem in pems:
        try:
            cert = crypto.load_certificate(crypto.FILETYPE_PEM, pem)
        except crypto.Error as exc:
            raise ValueError(f"a certificate did not parse ({exc})") from None
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
        if der in seen:
            continue
        seen.add(der)
        subject_hash = f"{cert.get_subject().hash() & 0xFFFFFFFF:08x}"
        n = 0
        while f"{subject_hash}.{n}" in names:
            n += 1
        names[f"{subject_hash}.{n}"] = pem
    return names


def _remove(directory: str, creator: int) -> None:
    if os.getpid() == creator:  # not a forked child: the parent and its siblings still use it
        shutil.rmtree(directory, ignore_errors=True)

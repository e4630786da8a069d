"""The agent's OPC UA application instance certificate: self-signed as OPC 10000-6 6.2.2 wants
it (asyncua's generator), with the configured ApplicationUri as URI SAN (a server compares it
with the URI in CreateSession: BadCertificateUriInvalid otherwise), the host names as DNS/IP
SANs, the configured validity and key size.

The files are written where the config says and nowhere else: a path that is a symbolic link, a
directory or another special file is refused (as root, a planted link would otherwise make the
command overwrite and chmod whatever it points to), so is one file for both. Both files are
written next to their targets first and only then renamed into place, so a failure leaves the
pair that was there (the one the PLC trusts) untouched."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config import OpcUaSourceConfig
from agent.errors import ConfigError
from agent.ingest.sources.opcua.client import PRODUCT_NAME, default_host_names


@dataclass(frozen=True)
class Created:
    certificate: Path
    private_key: Path
    application_uri: str
    host_names: list[str]
    sha256: str
    not_after: str


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def certificate_uris(path: Path) -> list[str]:
    """The URI SANs of a certificate file (DER or PEM); [] when it has none."""
    data = path.read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


SERVICE_GROUP = "edge-agent"


def _share_with_service(fd: int) -> None:
    """Made by root for the service: the key readable by the edge-agent group (0640), which the
    agent runs as; nobody else. On the open file: nothing a path could be swapped for."""
    import grp

    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(SERVICE_GROUP).gr_gid
    except KeyError:
        return  # not installed as a service here
    os.fchown(fd, 0, gid)
    os.fchmod(fd, 0o640)


def _check_target(place: str, path: Path) -> None:
    """Refuse what must not be written over or through."""
    if path.is_symlink():
        raise ConfigError([f"{place}.security: {path} is a symbolic link; name the real file "
                           "(the certificate and key are never written through a link)"])
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ConfigError([f"{place}.security: {path} is {kind}; name a file path"])


def _write_new(path: Path, data: bytes, mode: int, private: bool) -> Path:
    """``data`` in a new file beside ``path`` (O_EXCL, so nothing existing is followed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.fchmod(fd, mode)
        if private:
            _share_with_service(fd)
    finally:
        os.close(fd)
    return tmp


def create_certificate(cfg: OpcUaSourceConfig, app_uri: str, place: str, force: bool) -> Created:
    sec = cfg.security
    if sec.certificate is None or sec.private_key is None:
        raise ConfigError([f"{place}.security: name the files first: certificate: "
                           "/etc/edge-agent/pki/client-cert.der and private_key: "
                           "/etc/edge-agent/pki/client-key.pem"])
    cert_path, key_path = sec.certificate, sec.private_key
    for path in (cert_path, key_path):
        _check_target(place, path)
    if cert_path.resolve() == key_path.resolve():
        raise ConfigError([f"{place}.security: certificate and private_key name the same file "
                           f"({cert_path}); the certificate would overwrite the key"])
    existing = [p for p in (cert_path, key_path) if p.exists()]
    if existing and not force:
        raise ConfigError([f"{place}.security: {existing[0]} exists; the server may trust it "
                           "already. Add --force to replace it (then trust the new one)"])
    for path in (cert_path, key_path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"{place}.security: cannot create {path.parent} "
                               f"({exc.strerror}); run as a user who may, or name another path"]) from None
        if not os.access(path.parent, os.W_OK):
            raise ConfigError([f"{place}.security: {path.parent} is not writable for this user; "
                               "run with sudo, or name another path"])
    hosts = sec.host_names or default_host_names()
    key = rsa.generate_private_key(public_exponent=65537, key_size=sec.key_size)
    cert = cert_gen.generate_self_signed_app_certificate(
        key, f"{PRODUCT_NAME}@{hosts[0]}", {"organizationName": PRODUCT_NAME},
        [x509.UniformResourceIdentifier(app_uri), *(_san(h) for h in hosts)],
        [ExtendedKeyUsageOID.CLIENT_AUTH], days=sec.validity_days)
    encoding = serialization.Encoding.PEM if cert_path.suffix.lower() in (".pem", ".crt") else (
        serialization.Encoding.DER)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    written: list[Path] = []
    try:
        # the key private from its first byte (0600); both complete before either is in place
        written.append(_write_new(key_path, key_bytes, 0o600, private=True))
        written.append(_write_new(cert_path, cert.public_bytes(encoding), 0o644, private=False))
        os.replace(written[0], key_path)
        os.replace(written[1], cert_path)
    except OSError as exc:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        raise ConfigError([f"{place}.security: cannot write {exc.filename or cert_path} "
                           f"({exc.strerror}); run as a user who may write there, or name another "
                           "path"]) from None
    return Created(cert_path, key_path, app_uri, hosts, cert.fingerprint(hashes.SHA256()).hex(),
                   cert.not_valid_after_utc.date().isoformat())

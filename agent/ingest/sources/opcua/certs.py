"""The agent's OPC UA application instance certificate: self-signed as OPC 10000-6 6.2.2 wants
it (asyncua's generator), with the configured ApplicationUri as URI SAN (a server compares it
with the URI in CreateSession: BadCertificateUriInvalid otherwise), the host names as DNS/IP
SANs, the configured validity and key size."""

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


def _share_with_service(key_path: Path) -> None:
    """Made by root for the service: the key readable by the edge-agent group (0640), which the
    agent runs as; nobody else."""
    import grp

    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(SERVICE_GROUP).gr_gid
    except KeyError:
        return  # not installed as a service here
    os.chown(key_path, 0, gid)
    os.chmod(key_path, 0o640)


def create_certificate(cfg: OpcUaSourceConfig, app_uri: str, place: str, force: bool) -> Created:
    sec = cfg.security
    if sec.certificate is None or sec.private_key is None:
        raise ConfigError([f"{place}.security: name the files first: certificate: "
                           "/etc/edge-agent/pki/client-cert.der and private_key: "
                           "/etc/edge-agent/pki/client-key.pem"])
    cert_path, key_path = sec.certificate, sec.private_key
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
    try:
        # the key first, private from its first byte (0600), then the certificate (public)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_bytes)
        os.chmod(key_path, 0o600)
        cert_path.write_bytes(cert.public_bytes(encoding))
        _share_with_service(key_path)
    except OSError as exc:
        raise ConfigError([f"{place}.security: cannot write {exc.filename or cert_path} "
                           f"({exc.strerror}); run with sudo, or name another path"]) from None
    return Created(cert_path, key_path, app_uri, hosts, cert.fingerprint(hashes.SHA256()).hex(),
                   cert.not_valid_after_utc.date().isoformat())

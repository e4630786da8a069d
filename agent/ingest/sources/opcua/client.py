"""A configured asyncua client: URIs, identity, message security and server trust. The source
and the commissioning commands (`edge-agent opcua ...`) build their clients here, so what a
command shows is what the running agent does."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from agent.config import OpcUaSourceConfig, reveal
from agent.ingest.sources.opcua.reasons import Context, ServerNotTrusted

PRODUCT_NAME = "factory-edge-agent"


def application_uri(cfg: OpcUaSourceConfig, gateway_id: str) -> str:
    return cfg.uri_for(gateway_id)


def context(cfg: OpcUaSourceConfig, app_uri: str) -> Context:
    cert = str(cfg.security.certificate) if cfg.security.certificate else None
    return Context(cfg.endpoint, app_uri, cert, cfg.security.policy, cfg.security.mode)


def default_host_names() -> list[str]:
    names = [socket.gethostname()]
    fqdn = socket.getfqdn()
    if fqdn not in names and fqdn != "localhost":
        names.append(fqdn)
    return names


async def make_client(cfg: OpcUaSourceConfig, app_uri: str, identity: bool = True) -> Client:
    """Everything but connect(). With security on and no pinned certificate, asyncua asks the
    server for its endpoints first (a short unsecured exchange) to learn its certificate."""
    client = Client(cfg.endpoint, timeout=cfg.timeout_s, watchdog_intervall=cfg.watchdog_s)
    client.name = client.description = PRODUCT_NAME
    client.application_uri = app_uri
    client.product_uri = cfg.product_uri
    if identity and cfg.username:
        client.set_user(cfg.username)
        password = reveal(cfg.password)
        if password:
            client.set_password(password)
    sec = cfg.security
    if sec.mode != "None":
        assert sec.certificate is not None and sec.private_key is not None  # the model checks it
        policy = getattr(security_policies, f"SecurityPolicy{sec.policy}")
        await client.set_security(policy, str(sec.certificate), str(sec.private_key),
                                  server_certificate=str(sec.server_certificate)
                                  if sec.server_certificate else None,
                                  mode=getattr(ua.MessageSecurityMode, sec.mode))
        if sec.trust_dir is not None:
            client.certificate_validator = TrustDirValidator(sec.trust_dir)
    return client


def _load_certificates(directory: Path) -> list[x509.Certificate]:
    certs = []
    for path in sorted(directory.glob("*")):
        if path.suffix.lower() not in (".der", ".pem", ".crt", ".cer"):
            continue
        data = path.read_bytes()
        try:
            certs.append(x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                         else x509.load_der_x509_certificate(data))
        except ValueError:
            continue  # not a certificate: ignored, like a README in the folder
    return certs


class TrustDirValidator:
    """Trusted when the server's certificate is in the directory, or issued by a CA in it.
    Read at every connect: a certificate copied in is trusted at the next retry."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def __call__(self, cert: x509.Certificate, app_description: Any) -> None:
        try:
            trusted = _load_certificates(self.directory)
        except OSError as exc:
            raise ServerNotTrusted(f"cannot read trust_dir {self.directory}: {exc.strerror}") from None
        if any(t == cert for t in trusted):
            return
        for ca in trusted:
            if ca.subject == cert.issuer and _is_ca(ca):
                try:
                    cert.verify_directly_issued_by(ca)
                    return
                except (ValueError, TypeError, InvalidSignature):
                    continue
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()[:16]
        raise ServerNotTrusted(f"{cert.subject.rfc4514_string()}, SHA-256 {fingerprint}..., "
                               f"not in {self.directory}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False

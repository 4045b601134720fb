"""Certificates for the local control plane: one CA, the API server's serving certificate, an admin client
certificate and the service-account signing key. Written once; reused while the files exist."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
# Names and addresses the API server's serving certificate carries: loopback (the host's clients), the kubernetes
# Service's names and ClusterIP (in-cluster clients), and the host's address on the real node's pod bridge
# (realnode.NODE_IP), the kubernetes Service's endpoint, where pods reach the API server (clusternet.py).
SERVER_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local")
SERVER_IPS = ("127.0.0.1", "10.96.0.1", "10.88.0.1")


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(subject: x509.Name, key, ca_cert, ca_key, *, is_ca=False, server_sans=None, client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(ca_cert.subject if ca_cert is not None else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    usages = []
    if server_sans is not None:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.SubjectAlternativeName(server_sans), critical=False)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca_key if ca_key is not None else key, hashes.SHA256())


def _server_sans() -> list:
    return ([x509.DNSName(n) for n in SERVER_DNS_NAMES]
            + [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_IPS])


def missing_server_sans(cert_file: Path) -> list[str]:
    """The names and addresses of SERVER_DNS_NAMES and SERVER_IPS that the certificate in `cert_file` lacks."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [*SERVER_DNS_NAMES, *SERVER_IPS]
    names = set(have.get_values_for_type(x509.DNSName))
    ips = {str(a) for a in have.get_values_for_type(x509.IPAddress)}
    return [n for n in SERVER_DNS_NAMES if n not in names] + [a for a in SERVER_IPS if a not in ips]


def _replace(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _reissue_server(files: dict[str, Path]) -> None:
    """A new serving certificate with today's names, from the existing CA. The API server reloads its serving
    certificate when the files change, so a running cluster keeps running (clients trust the same CA)."""
    ca_key = serialization.load_pem_private_key(files["ca.key"].read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files["ca.crt"].read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(_name("kube-apiserver"), key, ca_cert, ca_key, server_sans=_server_sans())
    _replace(files["apiserver.key"], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()), 0o600)
    _replace(files["apiserver.crt"], cert.public_bytes(serialization.Encoding.PEM))


def ensure(pki_dir: Path) -> dict[str, Path]:
    """Create the PKI under `pki_dir` unless it is already complete; return the paths of every file. A complete
    PKI whose serving certificate lacks a name or address of SERVER_DNS_NAMES/SERVER_IPS (made by an older
    version) gets a new serving certificate from the same CA."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    files = {name: pki_dir / name for name in (
        "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")}
    if all(p.exists() for p in files.values()):
        if missing_server_sans(files["apiserver.crt"]):
            _reissue_server(files)
        return files
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(_name("startbench-local-ca"), ca_key, None, None, is_ca=True)
    _write_key(files["ca.key"], ca_key)
    files["ca.crt"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(_name("kube-apiserver"), server_key, ca_cert, ca_key, server_sans=_server_sans())
    _write_key(files["apiserver.key"], server_key)
    files["apiserver.crt"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = _issue(_name("startbench-admin", "system:masters"), admin_key, ca_cert, ca_key, client=True)
    _write_key(files["admin.key"], admin_key)
    files["admin.crt"].write_bytes(admin_cert.public_bytes(serialization.Encoding.PEM))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(files["sa.key"], sa_key)
    files["sa.pub"].write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return files

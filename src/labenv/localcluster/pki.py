"""Certificates and keys for one local cluster, made with `cryptography` (no openssl binary needed).

One CA signs the apiserver serving cert and a client cert per identity. Control-plane components get
their own RBAC identities (the bootstrap policy grants `system:kube-controller-manager` and
`system:kube-scheduler` what they need), so RBAC is exercised as on a real cluster; only the admin
user and the kwok fake-kubelet fleet are in `system:masters`. kubeadm uses a separate front-proxy CA;
one CA is enough here because `--requestheader-allowed-names` pins the proxy's CN.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The first address of --service-cluster-ip-range: the `kubernetes` Service's ClusterIP.
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
_VALIDITY = datetime.timedelta(days=3650)

# identity -> (CN, O); O=system:masters is the built-in cluster-admin group.
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("labenv-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    # The apiserver's aggregation-layer client; trusted to assert X-Remote-* headers (kubeadm's setup).
    "front-proxy-client": ("front-proxy-client", None),
}


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client_cert(self, identity: str) -> Path:
        return self.dir / f"{identity}.crt"

    def client_key(self, identity: str) -> Path:
        return self.dir / f"{identity}.key"


def ensure_pki(directory: Path) -> Pki:
    """Create the PKI once; ca.crt is written last, so its presence means the set is complete."""
    pki = Pki(directory)
    if pki.ca_cert.exists():
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labenv-ca")])
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            # Python >= 3.13 verifies with VERIFY_X509_STRICT, which wants SKI on the CA and AKI on leaves.
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    serving_key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in _DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", KUBERNETES_SERVICE_IP)]
    serving = _leaf("kube-apiserver", None, serving_key, ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    serving = serving.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_pair(pki.apiserver_cert, pki.apiserver_key, serving.sign(ca_key, hashes.SHA256()), serving_key)

    for identity, (cn, org) in CLIENTS.items():
        key = _new_key()
        cert = _leaf(cn, org, key, ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH).sign(ca_key, hashes.SHA256())
        _write_pair(pki.client_cert(identity), pki.client_key(identity), cert, key)

    sa_key = _new_key()
    _write_private(pki.service_account_key, sa_key)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _write_pair(pki.ca_cert, pki.ca_key, ca, ca_key)
    return pki


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate, and accepted everywhere here (ES256 service-account tokens, TLS, client certs).
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    cn: str,
    org: str | None,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return (
        _builder(x509.Name(attributes), ca.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )


def _write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)

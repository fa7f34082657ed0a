"""Signing keys of the tenants and PDF signatures (pyHanko, PAdES).

* **Production**: ``settings.signing_dir`` holds ``<tenant>.key.pem`` and ``<tenant>.cert.pem`` (and optionally
  ``<tenant>.chain.pem``) issued for the state's authority; ``settings.signing_key_passphrase`` unlocks the key;
  ``signing_self_signed=false`` makes a missing certificate an error instead of falling back.
* **Development**: on first use (and when the demo loads the tenant) a self-signed RSA-3072 key pair is created per
  tenant under ``<data_dir>/keys/<tenant>/`` — directory 0700, key 0600 — under a file lock, so two workers never
  create two keys. Only while ``signing_self_signed`` is true: with it false (required by
  ``BREITBAND_ENVIRONMENT=production``) such keys are neither created nor used, and signing fails with
  ``SigningUnavailable`` naming the files to provide.

Validation trusts exactly the tenants' certificates this installation signs with. What a signature is worth is a
second question (``trust_of_pdf``): a self-signed certificate — every development key — proves only that this
installation signed, no authority vouches for it, so /verify calls such a document "not trusted".
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from breitband.settings import Settings, get_settings

# pyHanko is imported inside the functions that sign or validate. It takes 0.3-2 s to import, and the API
# process and every command of the CLI load this module, while few requests sign (workers) or verify (/verify).


class SigningUnavailable(Exception):
    """No certificate is configured for the tenant (production without signing_dir files)."""


@dataclass
class TenantKey:
    key_file: Path
    cert_file: Path
    chain_file: Path | None
    self_signed: bool


def _dev_dir(settings: Settings, tenant_key: str) -> Path:
    return Path(settings.data_dir) / "keys" / tenant_key


def key_files(tenant_key: str, settings: Settings | None = None) -> TenantKey | None:
    settings = settings or get_settings()
    if settings.signing_dir:
        base = Path(settings.signing_dir)
        key, cert, chain = (base / f"{tenant_key}.key.pem", base / f"{tenant_key}.cert.pem",
                            base / f"{tenant_key}.chain.pem")
        if key.is_file() and cert.is_file():
            return TenantKey(key, cert, chain if chain.is_file() else None, False)
    if not settings.signing_self_signed:        # production: development keys left on disk are never used
        return None
    dev = _dev_dir(settings, tenant_key)
    if (dev / "signing-key.pem").is_file() and (dev / "signing-cert.pem").is_file():
        return TenantKey(dev / "signing-key.pem", dev / "signing-cert.pem", None, True)
    return None


def ensure_key(tenant_key: str, tenant_name: str, settings: Settings | None = None) -> TenantKey:
    """The tenant's key: the configured one, else (development) a self-signed one, created once."""
    settings = settings or get_settings()
    found = key_files(tenant_key, settings)
    if found is not None:
        return found
    if not settings.signing_self_signed:
        raise SigningUnavailable(
            f"No signing certificate for tenant {tenant_key!r}: put {tenant_key}.key.pem and {tenant_key}.cert.pem "
            f"into {settings.signing_dir or 'BREITBAND_SIGNING_DIR (not set)'}; self-signed development keys are "
            f"refused (BREITBAND_SIGNING_SELF_SIGNED=false, BREITBAND_ENVIRONMENT={settings.environment})")
    dev = _dev_dir(settings, tenant_key)
    dev.mkdir(parents=True, exist_ok=True)
    os.chmod(dev, 0o700)
    with open(dev / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = key_files(tenant_key, settings)
        if found is None:
            _create_self_signed(dev, tenant_key, tenant_name)
            found = key_files(tenant_key, settings)
    return found


def _create_self_signed(directory: Path, tenant_key: str, tenant_name: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Breitband {tenant_name} (Entwicklung)"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Breitband {tenant_name} – Bescheide (selbstsigniert)"),
    ])
    now = datetime.now(timezone.utc)     # the real time, not the service clock: others check the validity against it
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(directory / "signing-key.pem", key_pem, 0o600)
    _write(directory / "signing-cert.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _load_cert(path: Path) -> asn1_x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return asn1_x509.Certificate.load(data)


def cert_sha256(tenant: TenantKey) -> str:
    return hashlib.sha256(_load_cert(tenant.cert_file).dump()).hexdigest()


def subject(tenant: TenantKey) -> str:
    return _load_cert(tenant.cert_file).subject.human_friendly


SIGNATURE_BYTES_RESERVED = 16 * 1024


def sign_pdf(pdf: bytes, tenant: TenantKey, *, field_name: str, reason: str, location: str,
             settings: Settings | None = None) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # deferred: slow import (see the top)
    from pyhanko.sign import signers  # deferred: slow import (see the top)
    from pyhanko.sign.fields import SigSeedSubFilter  # deferred: slow import (see the top)

    settings = settings or get_settings()
    passphrase = settings.signing_key_passphrase.encode() if settings.signing_key_passphrase else None
    signer = signers.SimpleSigner.load(str(tenant.key_file), str(tenant.cert_file),
                                       ca_chain_files=(str(tenant.chain_file),) if tenant.chain_file else None,
                                       key_passphrase=passphrase)
    if signer is None:
        raise SigningUnavailable(f"The signing key {tenant.key_file} could not be loaded")
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(field_name=field_name, reason=reason, location=location,
                                        subfilter=SigSeedSubFilter.PADES)
    # A fixed reservation for the CMS signature: without it pyHanko signs once more only to measure the size, and
    # every signature loads the private key again (about half of the signing time). 16 KiB hold an RSA-4096
    # signature with a chain of several certificates; a larger one fails loudly (pyHanko checks), never silently.
    return signers.sign_pdf(writer, meta, signer=signer, bytes_reserved=SIGNATURE_BYTES_RESERVED).getvalue()


def trusted_certificates(tenant_keys: list[str], settings: Settings | None = None) -> list[Any]:
    certs = []
    for key in tenant_keys:
        found = key_files(key, settings)
        if found is not None:
            certs.append(_load_cert(found.cert_file))
    return certs


@dataclass
class SignatureCheck:
    signed: bool
    intact: bool = False
    trusted: bool = False
    whole_file: bool = False
    signer: str | None = None
    signed_at: str | None = None
    keywords: str | None = None
    problem: str | None = None


def check_signature(data: bytes, trust_roots: list[Any]) -> SignatureCheck:
    """What the PDF's embedded signature says, against our tenants' certificates (never raises)."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # deferred: slow import (see the top)
    from pyhanko.sign.validation import validate_pdf_signature  # deferred: slow import (see the top)
    from pyhanko.sign.validation.status import SignatureCoverageLevel  # deferred: slow import (see the top)
    from pyhanko_certvalidator import ValidationContext  # deferred: slow import (see the top)

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        try:
            keywords = " ".join(reader.document_meta_view.keywords or []) or None
        except Exception:  # noqa: BLE001 - metadata is a hint only
            keywords = None
        sigs = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - not a PDF we can read
        return SignatureCheck(signed=False, problem=f"not a readable PDF ({type(exc).__name__})")
    if not sigs:
        return SignatureCheck(signed=False, keywords=keywords, problem="the PDF carries no signature")
    try:
        status = validate_pdf_signature(sigs[-1], ValidationContext(trust_roots=trust_roots, allow_fetching=False))
    except Exception as exc:  # noqa: BLE001
        return SignatureCheck(signed=True, keywords=keywords, problem=f"signature cannot be validated: {exc}")
    return SignatureCheck(signed=True, intact=bool(status.intact and status.valid), trusted=bool(status.trusted),
                          whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
                          signer=status.signing_cert.subject.human_friendly if status.signing_cert else None,
                          signed_at=status.signer_reported_dt.isoformat() if status.signer_reported_dt else None,
                          keywords=keywords)


# --- what a signature is worth ------------------------------------------------------------------------------------

TRUSTED_TEXT = ("Signiert mit dem Zertifikat, das für diesen Dienst hinterlegt ist. / Signed with the certificate "
                "configured for this service.")
DEVELOPMENT_TEXT = ("Nicht vertrauenswürdig: Die Signatur ist gültig, wurde aber mit einem Entwicklungsschlüssel "
                    "(selbstsigniert) erstellt, für den keine Behörde bürgt. / Not trusted: the signature is valid, "
                    "but it was made with a development key (self-signed) that no authority vouches for.")


@dataclass
class Trust:
    trusted: bool
    development_key: bool
    statement: str

    def as_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "development_key": self.development_key, "statement": self.statement}


def is_self_signed(cert) -> bool:
    """An asn1crypto certificate whose issuer is its subject (asn1crypto: 'yes' when its signature checks out with its
    own key, 'maybe' when the names match): what every development key is, and what no authority's certificate is."""
    return cert.self_signed != "no"


def trust_of_pdf(data: bytes) -> Trust | None:
    """How far the signer of the PDF's last signature can be trusted; None for a PDF without a readable signature.
    Looks at the certificate only; whether the signature matches the content is ``check_signature``'s question."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # deferred: slow import (see the top)

    try:
        sigs = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
        cert = sigs[-1].signer_cert if sigs else None
    except Exception:  # noqa: BLE001 - not a PDF we can read: no statement
        return None
    if cert is None:
        return None
    if is_self_signed(cert):
        return Trust(trusted=False, development_key=True, statement=DEVELOPMENT_TEXT)
    return Trust(trusted=True, development_key=False, statement=TRUSTED_TEXT)

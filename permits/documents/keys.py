"""Signing keys of the authorities and the tenants, and PDF signatures (pyHanko, PAdES).

* **An authority's key** (``authority_signing_keys``, one per organisation): imported from the PKCS#12 file the
  authority brings (``import_pkcs12``; trusted for its tenant: the tenant admin registered it as that authority's
  certificate), or created self-signed for a test run (``create_authority_test_key``; never trusted). The files live
  under ``<data_dir>/keys/authorities/<organisation id>/`` (directory 0700, files 0600; the private key encrypted with
  ``signing_key_passphrase`` when one is set). A document is signed with its deciding authority's key when there is
  one (``signing_key_for``); otherwise with the tenant's platform key below, and the document and /verify say so.

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
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from breitband.models import Organisation
from breitband.settings import Settings, get_settings
from permits.documents.models import AuthorityKey, KeySource

# pyHanko is imported inside the functions that sign or validate. It takes 0.3-2 s to import, and the API
# process and every command of the CLI load this module, while few requests sign (workers) or verify (/verify).


class KeyImportError(ValueError):
    """A PKCS#12 file that cannot be used: not PKCS#12, wrong password, no key or certificate, expired."""


class SigningUnavailable(Exception):
    """No certificate is configured for the tenant (production without signing_dir files)."""


@dataclass
class TenantKey:
    """A key to sign with: the tenant's platform key, or (``source`` authority | authority_test) an authority's."""
    key_file: Path
    cert_file: Path
    chain_file: Path | None
    self_signed: bool
    source: str = KeySource.platform.value
    organisation_id: uuid.UUID | None = None


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
    cert = _self_signed_cert(key, f"Breitband {tenant_name} (Entwicklung)",
                             f"Breitband {tenant_name} – Bescheide (selbstsigniert)")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(directory / "signing-key.pem", key_pem, 0o600)
    _write(directory / "signing-cert.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)


# --- the authorities' keys ---------------------------------------------------------------------------------------

def authority_dir(organisation_id: uuid.UUID, settings: Settings | None = None) -> Path:
    return Path((settings or get_settings()).data_dir) / "keys" / "authorities" / str(organisation_id)


def authority_key(session: Session, organisation_id: uuid.UUID) -> AuthorityKey | None:
    return session.get(AuthorityKey, organisation_id)


def signing_key_for(session: Session, tenant_key: str, organisation_id: uuid.UUID | None) -> TenantKey | None:
    """The deciding authority's key when one is on file (and its files are there); None: sign with the tenant's."""
    row = session.get(AuthorityKey, organisation_id) if organisation_id else None
    if row is None or row.tenant_key != tenant_key or not Path(row.key_file).is_file():
        return None
    source = KeySource.authority if row.source == "imported" else KeySource.authority_test
    return TenantKey(Path(row.key_file), Path(row.cert_file), Path(row.chain_file) if row.chain_file else None,
                     row.source != "imported", source.value, row.organisation_id)


def import_pkcs12(session: Session, tenant_key: str, organisation_id: uuid.UUID, data: bytes,
                  password: bytes | None, now: datetime, settings: Settings | None = None) -> AuthorityKey:
    """Store the key and certificate of a PKCS#12 file as the authority's signing key (replacing an earlier one)."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise KeyImportError(f"not a PKCS#12 file, or the password is wrong ({exc})") from None
    if key is None or cert is None:
        raise KeyImportError("the PKCS#12 file holds no private key with its certificate")
    if not isinstance(key, rsa.RSAPrivateKey) and not hasattr(key, "curve"):
        raise KeyImportError(f"unsupported key type {type(key).__name__} (RSA or EC keys only)")
    real_now = datetime.now(timezone.utc)   # the real time, not the service clock: verifiers check against it
    if cert.not_valid_after_utc <= real_now or cert.not_valid_before_utc > real_now:
        raise KeyImportError(f"the certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d} to "
                             f"{cert.not_valid_after_utc:%Y-%m-%d}, not now")
    return _store_authority_key(session, tenant_key, organisation_id, key, cert, list(extra or []), "imported", now,
                                settings)


def create_authority_test_key(session: Session, tenant_key: str, organisation_id: uuid.UUID, authority_name: str,
                              now: datetime, settings: Settings | None = None) -> AuthorityKey:
    """A self-signed key in the authority's name, for a test run: documents signed with it say "nicht
    vertrauenswürdig / nur Testbetrieb"."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    cert = _self_signed_cert(key, authority_name, f"{authority_name} – Bescheide (Testschlüssel, selbstsigniert)")
    return _store_authority_key(session, tenant_key, organisation_id, key, cert, [], "self_signed", now, settings)


def _store_authority_key(session: Session, tenant_key: str, organisation_id: uuid.UUID, key, cert, chain: list,
                         source: str, now: datetime, settings: Settings | None) -> AuthorityKey:
    settings = settings or get_settings()
    directory = authority_dir(organisation_id, settings)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    encryption = (serialization.BestAvailableEncryption(settings.signing_key_passphrase.encode())
                  if settings.signing_key_passphrase else serialization.NoEncryption())
    pem_enc = serialization.Encoding.PEM
    _write(directory / "key.pem", key.private_bytes(pem_enc, serialization.PrivateFormat.PKCS8, encryption), 0o600)
    _write(directory / "cert.pem", cert.public_bytes(pem_enc), 0o600)
    chain_file = None
    if chain:
        chain_file = directory / "chain.pem"
        _write(chain_file, b"".join(c.public_bytes(pem_enc) for c in chain), 0o600)
    elif (directory / "chain.pem").exists():
        (directory / "chain.pem").unlink()
    der = cert.public_bytes(serialization.Encoding.DER)
    row = session.get(AuthorityKey, organisation_id) or AuthorityKey(organisation_id=organisation_id)
    row.tenant_key, row.source, row.created_at = tenant_key, source, now
    row.key_file, row.cert_file = str(directory / "key.pem"), str(directory / "cert.pem")
    row.chain_file = str(chain_file) if chain_file else None
    row.cert_sha256 = hashlib.sha256(der).hexdigest()
    loaded = asn1_x509.Certificate.load(der)
    row.subject, row.issuer = loaded.subject.human_friendly[:500], loaded.issuer.human_friendly[:500]
    row.not_before, row.not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    session.add(row)
    session.flush()
    return row


def authority_key_out(row: AuthorityKey) -> dict[str, Any]:
    return {"organisation_id": str(row.organisation_id), "source": row.source, "certificate": row.cert_file,
            "sha256": row.cert_sha256, "subject": row.subject, "issuer": row.issuer,
            "not_before": row.not_before.isoformat(), "not_after": row.not_after.isoformat(),
            "trusted": row.source == "imported"}


def _self_signed_cert(key, organisation: str, common_name: str):
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
    ])
    now = datetime.now(timezone.utc)     # the real time, not the service clock: others check the validity against it
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


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
_SIGNERS: dict[tuple, Any] = {}


def sign_pdf(pdf: bytes, tenant: TenantKey, *, field_name: str, reason: str, location: str,
             settings: Settings | None = None) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # deferred: slow import (see the top)
    from pyhanko.sign import signers  # deferred: slow import (see the top)
    from pyhanko.sign.fields import SigSeedSubFilter  # deferred: slow import (see the top)

    settings = settings or get_settings()
    passphrase = settings.signing_key_passphrase.encode() if settings.signing_key_passphrase else None
    files = (tenant.key_file, tenant.cert_file, tenant.chain_file)
    # One loaded signer per key and its files' state: loading (and decrypting) the key and parsing the certificates
    # is part of every signature otherwise; a replaced key (import, new file) has another mtime and is loaded anew.
    stamp = (files, tuple(os.stat(f).st_mtime_ns if f else 0 for f in files), passphrase)
    signer = _SIGNERS.get(stamp)
    if signer is None:
        signer = signers.SimpleSigner.load(str(tenant.key_file), str(tenant.cert_file),
                                           ca_chain_files=(str(tenant.chain_file),) if tenant.chain_file else None,
                                           key_passphrase=passphrase)
        if signer is None:
            raise SigningUnavailable(f"The signing key {tenant.key_file} could not be loaded")
        if len(_SIGNERS) > 64:
            _SIGNERS.clear()
        _SIGNERS[stamp] = signer
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    # PDF/A: the document information dictionary must say what the XMP metadata says. pyHanko rewrites the XMP
    # producer as its own but appends itself to the dictionary's ("WeasyPrint …; pyHanko …"); without an earlier
    # producer both read the same.
    info = writer.trailer["/Info"].get_object() if "/Info" in writer.trailer else None
    if info is not None and "/Producer" in info:
        del info["/Producer"]
        writer.update_container(info)
    meta = signers.PdfSignatureMetadata(field_name=field_name, reason=reason, location=location,
                                        subfilter=SigSeedSubFilter.PADES)
    # A fixed reservation for the CMS signature: without it pyHanko signs once more only to measure the size, and
    # every signature loads the private key again (about half of the signing time). 16 KiB hold an RSA-4096
    # signature with a chain of several certificates; a larger one fails loudly (pyHanko checks), never silently.
    return signers.sign_pdf(writer, meta, signer=signer, bytes_reserved=SIGNATURE_BYTES_RESERVED).getvalue()


def trusted_certificates(tenant_keys: list[str], settings: Settings | None = None,
                         authority_cert_files: list[str] | None = None) -> list[Any]:
    """The certificates this installation signs with: the tenants' platform keys and the authorities' keys."""
    certs = [_load_cert(Path(f)) for f in authority_cert_files or [] if Path(f).is_file()]
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
            # the information dictionary: pyHanko's metadata view reads the XMP, where it does not parse pdf:Keywords
            info = reader.trailer["/Info"] if "/Info" in reader.trailer else {}
            keywords = (str(info["/Keywords"]) if "/Keywords" in info else None) or \
                " ".join(reader.document_meta_view.keywords or []) or None
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


AUTHORITY_TEXT = ("Vertrauenswürdig: signiert mit dem Zertifikat der Behörde {authority}, das für {tenant} "
                  "hinterlegt ist. / Trusted: signed with the certificate of {authority} registered for {tenant}.")
AUTHORITY_TEST_TEXT = ("Nicht vertrauenswürdig / nur Testbetrieb: Die Signatur ist gültig, wurde aber mit einem "
                       "selbstsignierten Testschlüssel der Behörde {authority} erstellt. / Not trusted, test use only: "
                       "the signature is valid, but it was made with a self-signed test key of {authority}.")
PLATFORM_NOTE = (" Signiert mit dem Plattformschlüssel des Landes, nicht mit einem Schlüssel der Behörde. / Signed "
                 "with the state's platform key, not with a key of the authority.")


@dataclass
class Trust:
    trusted: bool
    development_key: bool
    statement: str
    key: str = KeySource.platform.value          # KeySource: whose key signed
    authority: str | None = None                 # the authority whose certificate it is (authority keys)

    def as_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "development_key": self.development_key, "statement": self.statement,
                "key": self.key, "authority": self.authority}


def is_self_signed(cert) -> bool:
    """An asn1crypto certificate whose issuer is its subject (asn1crypto: 'yes' when its signature checks out with its
    own key, 'maybe' when the names match): what every development key is, and what no authority's certificate is."""
    return cert.self_signed != "no"


def signer_certificate(data: bytes):
    """The certificate of the PDF's last signature (asn1crypto), or None."""
    from pyhanko.pdf_utils.reader import PdfFileReader  # deferred: slow import (see the top)

    try:
        sigs = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
        return sigs[-1].signer_cert if sigs else None
    except Exception:  # noqa: BLE001 - not a PDF we can read: no statement
        return None


def trust_of_pdf(data: bytes, session: Session | None = None, tenant_key: str | None = None) -> Trust | None:
    """How far the signer of the PDF's last signature can be trusted for the tenant; None for a PDF without a
    readable signature. An authority's certificate on file for the tenant: trusted when it was imported, "test use
    only" when self-signed by us; otherwise the platform key: a self-signed one (development) is not trusted.
    Looks at the certificate only; whether the signature matches the content is ``check_signature``'s question."""
    cert = signer_certificate(data)
    if cert is None:
        return None
    if session is not None:
        digest = hashlib.sha256(cert.dump()).hexdigest()
        row = session.scalars(select(AuthorityKey).where(AuthorityKey.cert_sha256 == digest)).first()
        if row is not None and (tenant_key is None or row.tenant_key == tenant_key):
            org = session.get(Organisation, row.organisation_id)
            authority = org.name if org is not None else row.subject
            if row.source == "imported":
                return Trust(True, False, AUTHORITY_TEXT.format(authority=authority, tenant=row.tenant_key),
                             KeySource.authority.value, authority)
            return Trust(False, True, AUTHORITY_TEST_TEXT.format(authority=authority),
                         KeySource.authority_test.value, authority)
    if is_self_signed(cert):
        return Trust(trusted=False, development_key=True, statement=DEVELOPMENT_TEXT + PLATFORM_NOTE)
    return Trust(trusted=True, development_key=False, statement=TRUSTED_TEXT + PLATFORM_NOTE)

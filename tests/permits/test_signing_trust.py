"""Issue 11, finding 8: production refuses the self-signed signing fallback, and /verify calls a document signed with
a development (self-signed) key "not trusted" — valid signature, but no authority vouches for the key — while one
signed with a certificate issued by a CA (as an authority's would be) is trusted."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from breitband.settings import Settings
from permits.documents import generator
from permits.documents import keys as documents_keys
from permits.documents.models import DecisionDocument

PLATFORM = (" Signiert mit dem Plattformschlüssel des Landes, nicht mit einem Schlüssel der Behörde. / Signed with the "
            "state's platform key, not with a key of the authority.")
NOT_TRUSTED = ("Nicht vertrauenswürdig: Die Signatur ist gültig, wurde aber mit einem Entwicklungsschlüssel "
               "(selbstsigniert) erstellt, für den keine Behörde bürgt. / Not trusted: the signature is valid, but it "
               "was made with a development key (self-signed) that no authority vouches for." + PLATFORM)


def test_production_refuses_to_start_with_the_self_signed_fallback():
    with pytest.raises(ValidationError) as err:
        Settings(environment="production")
    assert ("BREITBAND_ENVIRONMENT=production refuses self-signed signing keys: "
            "set BREITBAND_SIGNING_SELF_SIGNED=false") in str(err.value)
    assert Settings(environment="production", signing_self_signed=False).environment == "production"


def test_without_the_fallback_signing_fails_clearly_and_never_uses_a_development_key(
        granted, client, he, db, task_db, session, settings, monkeypatch):
    app, case, doc = granted                              # signed with the development key, created on first use
    assert (settings.data_dir / "keys" / "he" / "signing-key.pem").is_file()
    monkeypatch.setattr(settings, "signing_self_signed", False)
    monkeypatch.setattr(settings, "environment", "production")
    assert documents_keys.key_files("he", settings) is None           # the key on disk is not used any more
    with pytest.raises(documents_keys.SigningUnavailable) as err:
        documents_keys.ensure_key("he", "Hessen", settings)
    assert str(err.value) == (
        "No signing certificate for tenant 'he': put he.key.pem and he.cert.pem into BREITBAND_SIGNING_DIR (not set); "
        "self-signed development keys are refused (BREITBAND_SIGNING_SELF_SIGNED=false, "
        "BREITBAND_ENVIRONMENT=production)")
    r = client.post(f"/api/v1/documents/{doc.id}/regenerate", headers=he.hessen_mobil.headers)
    new_id = uuid.UUID(r.json()["id"])
    with pytest.raises(documents_keys.SigningUnavailable):
        generator.generate(task_db, new_id)
    session.expire_all()
    failed = session.get(DecisionDocument, new_id)
    assert failed.status == "failed" and "self-signed development keys are refused" in failed.error
    assert failed.sha256 is None                            # nothing was signed


def test_verify_says_not_trusted_for_a_development_key(granted, client, he):
    app, case, doc = granted
    by_id = client.get(f"/verify/{doc.id}").json()
    assert by_id["status"] == "valid"
    assert by_id["trust"] == {"trusted": False, "development_key": True, "statement": NOT_TRUSTED, "key": "platform",
                              "authority": None}
    page = client.get(f"/verify/{doc.id}", headers={"Accept": "text/html"}).text
    assert "Nicht vertrauenswürdig" in page and "Not trusted: the signature is valid" in page
    assert "style=" not in page and "<script" not in page                  # under the CSP
    data = client.get(f"/api/v1/documents/{doc.id}/pdf", headers=he.operator.headers).content
    upload = client.post("/verify", files={"file": ("b.pdf", data, "application/pdf")}).json()
    assert (upload["genuine"], upload["unchanged"]) == (True, True)
    assert upload["trust"]["trusted"] is False and upload["trust"]["development_key"] is True
    assert upload["reason"].startswith(NOT_TRUSTED)
    unsigned = client.post("/verify", files={"file": ("x.pdf", b"%PDF-1.7\n%%EOF\n", "application/pdf")}).json()
    assert unsigned["trust"] is None


def _ca_issued(directory, tenant: str) -> None:
    """A key and certificate for the tenant issued by a CA of its own (as a state's PKI would), written into the
    signing directory with the CA as the chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Landes-PKI Test"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "Landes-PKI Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
          .not_valid_after(now + timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hessen Mobil – Bescheide")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / f"{tenant}.key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                                     serialization.NoEncryption()))
    (directory / f"{tenant}.cert.pem").write_bytes(leaf.public_bytes(pem))
    (directory / f"{tenant}.chain.pem").write_bytes(ca.public_bytes(pem))


def test_a_ca_issued_certificate_is_trusted(granted, client, he, db, task_db, session, settings, monkeypatch,
                                            tmp_path):
    app, case, doc = granted
    _ca_issued(tmp_path, "he")
    monkeypatch.setattr(settings, "signing_dir", tmp_path)
    monkeypatch.setattr(settings, "signing_self_signed", False)
    new_id = client.post(f"/api/v1/documents/{doc.id}/regenerate", headers=he.hessen_mobil.headers).json()["id"]
    assert generator.generate(task_db, uuid.UUID(new_id))["status"] == "ready"
    by_id = client.get(f"/verify/{new_id}").json()
    assert by_id["trust"] == {"trusted": True, "development_key": False, "key": "platform", "authority": None,
                              "statement": "Signiert mit dem Zertifikat, das für diesen Dienst hinterlegt ist. / "
                                           "Signed with the certificate configured for this service." + PLATFORM}
    assert by_id["signer"] == "Common Name: Hessen Mobil – Bescheide"
    data = client.get(f"/api/v1/documents/{new_id}/pdf", headers=he.operator.headers).content
    upload = client.post("/verify", files={"file": ("b.pdf", data, "application/pdf")}).json()
    assert (upload["genuine"], upload["trust"]["trusted"]) == (True, True)
    assert not upload["reason"].startswith("Nicht vertrauenswürdig")
    session.expire_all()
    assert session.scalars(select(DecisionDocument.status).where(DecisionDocument.id == uuid.UUID(new_id))).one() \
        == "ready"

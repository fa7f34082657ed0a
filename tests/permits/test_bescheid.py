"""Issue 15 part 3: a decision document an authority signs — the letter's data (addressee, validity, fees, labels) as
pure functions, PDF/A-3b output, the authority's own signing key (imported PKCS#12, or a self-signed test key) chosen
for its decisions, and /verify saying who signed, when, and whether the certificate is trusted for the tenant."""

from __future__ import annotations

import os
import stat
import uuid
from datetime import date, datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from breitband.cli import app as cli
from breitband.models import Organisation, User
from geo.rules import Fees
from permits.documents import generator, letter
from permits.documents.models import AuthorityKey, DecisionDocument
from permits.labels import humanise, label
from tests.support.documents import ARTIFACTS, pdfa_problems

LEGAL = "HVwKostG i. V. m. der Verwaltungskostenordnung"


def test_letter_data_never_shows_a_raw_value_or_none():
    assert letter.lines("Wilhelmstraße 10\n65185 Wiesbaden") == ["Wilhelmstraße 10", "65185 Wiesbaden"]
    assert letter.lines("Hugenottenallee 53, 63263 Neu-Isenburg") == ["Hugenottenallee 53", "63263 Neu-Isenburg"]
    assert letter.lines(None) == [] and letter.lines("  ") == []
    head = letter.authority_block("Stadt Neu-Isenburg", None, None, "tiefbau@neu-isenburg.example", None)
    assert (head["sender_line"], head["missing"]) == ("Stadt Neu-Isenburg", ["address", "phone"])
    to = letter.addressee("Glasfaser GmbH", "Am Hafen 1\n60311 Frankfurt am Main", "Olaf Planer",
                          {"name": "Ina Plan", "organisation": "Planungsbüro Netz",
                           "address": "Weg 2, 63065 Offenbach"})
    assert to["lines"] == ["Planungsbüro Netz", "Ina Plan", "Weg 2", "63065 Offenbach"]
    assert to["on_behalf_of"] == "Glasfaser GmbH"
    assert letter.addressee("Glasfaser GmbH", None, None, None)["lines"] == ["Glasfaser GmbH"]
    assert letter.official({"user_id": "x", "name": "R. Prüfer"}, None, None) == {"name": "R. Prüfer", "function": None}
    assert letter.official(None, None, None) is None

    assert label("road_class", "land") == "Landesstraße" and label("road_class", None) == "–"
    assert label("laying_method", "directional_drilling") == "Spülbohrung (HDD)"
    assert label("road_class", "xyz") == "unbekannt (xyz)"
    assert humanise("Anschlussrampe (trunk_link) an B 44: Bundesstraße → Hessen Mobil") == (
        "Anschlussrampe (Bundesstraße (Zubringer)) an B 44: Bundesstraße → Hessen Mobil")
    assert humanise("residential Service-Center-Straße: keine klassifizierte Straße") == (
        "Wohnstraße Service-Center-Straße: keine klassifizierte Straße")
    row = letter.piece_row({"road_ref": None, "road_name": None, "road_class": "bund", "rule": None})
    assert row == {"road": "ohne Namen", "road_class": "Bundesstraße", "gemeinde": "–", "length_m": None, "rule": "–"}


def test_validity_and_fees_are_computed():
    assert letter.validity("granted", date(2026, 2, 2), 24) == {"months": 24, "start_by": date(2028, 2, 2)}
    assert letter.validity("granted", date(2026, 8, 31), 6)["start_by"] == date(2027, 2, 28)   # § 188 (3) BGB
    assert letter.validity("refused", date(2026, 2, 2), 24) is None
    assert letter.validity("granted", date(2026, 2, 2), 0) is None

    schedule = Fees(legal_basis=LEGAL, base_eur=50, per_metre_eur=0.5, min_eur=100, max_eur=5000, refusal_factor=0.5)
    fee = letter.fee_statement(schedule, "granted", 300.0, date(2026, 2, 2))
    assert (fee["amount"], fee["amount_text"], fee["due"]) == (200.0, "200,00 €", date(2026, 3, 4))
    assert fee["calculation"] == "Grundgebühr 50,00 € + 0,50 € je Meter × 300 m"
    assert fee["text"] == f"Für diesen Bescheid wird eine Verwaltungsgebühr von 200,00 € festgesetzt ({LEGAL})."
    assert letter.fee_statement(schedule, "granted", 20.0, None)["amount"] == 100.0          # the minimum
    assert letter.fee_statement(schedule, "granted", 20000.0, None)["amount_text"] == "5.000,00 €"   # the maximum
    assert letter.fee_statement(schedule, "refused", 300.0, None)["amount"] == 100.0         # half for a refusal
    free = letter.fee_statement(Fees(free=True, legal_basis="§ 8 Abs. 1 Nr. 3 GebG NRW"), "granted", 300.0, None)
    assert free["text"] == "Dieser Bescheid ergeht gebührenfrei (§ 8 Abs. 1 Nr. 3 GebG NRW)."
    assert letter.fee_statement(None, "granted", 300.0, None)["kind"] == "separate"
    assert letter.fee_statement(schedule, "deemed_granted", 300.0, None) is None


def _pkcs12(password: bytes) -> bytes:
    """An authority's key and certificate issued by a CA (as a state PKI would), as the PKCS#12 file it brings."""
    now = datetime.now(timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Landes-PKI Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
          .not_valid_after(now + timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hessen Mobil"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "Hessen Mobil – Bescheide")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return pkcs12.serialize_key_and_certificates(b"hessen-mobil", key, leaf, [ca],
                                                 serialization.BestAvailableEncryption(password))


def _regenerate(client, he, task_db, doc_id) -> uuid.UUID:
    new_id = uuid.UUID(client.post(f"/api/v1/documents/{doc_id}/regenerate", headers=he.hessen_mobil.headers)
                       .json()["id"])
    assert generator.generate(task_db, new_id)["status"] == "ready"
    return new_id


def test_the_authoritys_imported_certificate_signs_a_pdfa_letter(granted, client, he, session, task_db, tmp_path,
                                                                 settings):
    app, case, doc = granted
    runner = CliRunner()
    p12, secret = tmp_path / "hm.p12", tmp_path / "pw"
    p12.write_bytes(_pkcs12(b"geheim"))
    secret.write_text("falsch\n")
    wrong = runner.invoke(cli, ["documents", "keys", "--tenant", "he", "--authority", "Hessen Mobil",
                                "--import", str(p12), "--password-file", str(secret)])
    assert wrong.exit_code == 2 and "error: " in wrong.output and "password is wrong" in wrong.output
    unknown = runner.invoke(cli, ["documents", "keys", "--tenant", "he", "--authority", "Hessen Mobiel"])
    assert unknown.exit_code == 2 and "no road authority 'Hessen Mobiel' in tenant 'he'" in unknown.output

    # the letterhead, the official's function; then the authority's PKCS#12
    mobil = session.get(Organisation, he.orgs["hessen_mobil"])
    mobil.address, mobil.phone, mobil.website = ("Hessen Mobil – Straßen- und Verkehrsmanagement\nWilhelmstraße 10\n"
                                                 "65185 Wiesbaden", "0611 366-0", "https://mobil.hessen.de")
    session.get(User, he.hessen_mobil.user_id).job_title = "Sachbearbeiterin Straßenbenutzung"
    session.commit()
    secret.write_text("geheim\n")
    ok = runner.invoke(cli, ["documents", "keys", "--tenant", "he", "--authority", "Hessen Mobil",
                             "--import", str(p12), "--password-file", str(secret)])
    assert ok.exit_code == 0, ok.output
    row = session.get(AuthorityKey, he.orgs["hessen_mobil"])
    assert (row.source, row.subject) == ("imported",
                                         "Common Name: Hessen Mobil – Bescheide, Organization: Hessen Mobil")
    assert row.issuer == "Common Name: Landes-PKI Test CA"
    for path in (row.key_file, row.cert_file, row.chain_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    new_id = _regenerate(client, he, task_db, doc.id)
    session.expire_all()
    new = session.get(DecisionDocument, new_id)
    assert (new.key_source, new.signing_org_id, new.official_name, new.official_function) == (
        "authority", he.orgs["hessen_mobil"], "pruefer", "Sachbearbeiterin Straßenbenutzung")
    data = client.get(f"/api/v1/documents/{new_id}/pdf", headers=he.operator.headers).content
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "granted-authority-key.pdf").write_bytes(data)
    assert pdfa_problems(data) == []
    from tests.permits.test_documents import pdf_text

    text = " ".join(pdf_text(data).split())
    for expected in ("Hessen Mobil – Straßen- und Verkehrsmanagement · Wilhelmstraße 10 · 65185 Wiesbaden",
                     "Telefon 0611 366-0", "https://mobil.hessen.de", "Sachbearbeiterin Straßenbenutzung",
                     "Die Kostenentscheidung bleibt einem gesonderten Bescheid vorbehalten."):
        assert expected in text, expected
    assert "Plattformschlüssel" not in text

    by_id = client.get(f"/verify/{new_id}").json()
    assert by_id["official"] == {"name": "pruefer", "function": "Sachbearbeiterin Straßenbenutzung"}
    assert (by_id["issuer"], by_id["key_source"], by_id["signed_at"]) == ("Hessen Mobil", "authority",
                                                                          new.signed_at.isoformat().replace("+00:00",
                                                                                                            "Z"))
    assert by_id["trust"] == {
        "trusted": True, "development_key": False, "key": "authority", "authority": "Hessen Mobil",
        "statement": "Vertrauenswürdig: signiert mit dem Zertifikat der Behörde Hessen Mobil, das für he hinterlegt "
                     "ist. / Trusted: signed with the certificate of Hessen Mobil registered for he."}
    page = client.get(f"/verify/{new_id}", headers={"Accept": "text/html"}).text
    assert "Sachbearbeiterin Straßenbenutzung" in page and "Zertifikat der Behörde" in page
    upload = client.post("/verify", files={"file": ("b.pdf", data, "application/pdf")}).json()
    assert (upload["genuine"], upload["trust"]["trusted"], upload["trust"]["key"]) == (True, True, "authority")


def test_a_self_signed_test_key_of_the_authority_is_not_trusted(granted, client, he, session, task_db):
    app, case, doc = granted
    r = CliRunner().invoke(cli, ["documents", "keys", "--tenant", "he", "--authority", str(he.orgs["hessen_mobil"]),
                                 "--create-self-signed"])
    assert r.exit_code == 0 and '"source": "self_signed"' in r.output and '"trusted": false' in r.output
    new_id = _regenerate(client, he, task_db, doc.id)
    data = client.get(f"/api/v1/documents/{new_id}/pdf", headers=he.operator.headers).content
    from tests.permits.test_documents import pdf_text

    assert "nur für den Testbetrieb" in " ".join(pdf_text(data).split())
    trust = client.get(f"/verify/{new_id}").json()["trust"]
    assert (trust["trusted"], trust["key"]) == (False, "authority_test")
    assert trust["statement"].startswith("Nicht vertrauenswürdig / nur Testbetrieb")
    assert pdfa_problems(data) == []


def test_letterheads_load_from_the_data_file_and_gaps_are_listed(he, session, task_db):
    from breitband.settings import PROJECT_ROOT

    r = CliRunner().invoke(cli, ["documents", "letterheads", "--tenant", "he", "--load",
                                 str(PROJECT_ROOT / "data" / "tenants" / "he_authorities.toml")])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("updated ")
    session.expire_all()
    mobil = session.get(Organisation, he.orgs["hessen_mobil"])
    assert letter.lines(mobil.address) == ["Hessen Mobil – Straßen- und Verkehrsmanagement", "Wilhelmstraße 10",
                                           "65185 Wiesbaden"]
    assert "warning: Stadt Neu-Isenburg: no phone" in r.output                 # not in the file: a gap, not a guess
    bad = CliRunner().invoke(cli, ["documents", "letterheads", "--tenant", "he", "--load", "/nonexistent.toml"])
    assert bad.exit_code == 2 and "error: /nonexistent.toml: no such file" in bad.output

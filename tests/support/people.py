"""People in tenant "he": organisations of operators and an operating office, and reviewers of the real authorities
of the Hessen data, each with an API token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from breitband import identity
from breitband.models import Organisation, OrgKind, Role
from breitband.settings import PROJECT_ROOT
from permits.cases.catalogue import load_catalogue_file
from tests.support.hessen import FRANKFURT, KREIS_OFFENBACH, NEU_ISENBURG, authority_org


@dataclass
class Person:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class He:
    operator: Person
    colleague: Person            # same operator organisation
    other_operator: Person
    admin: Person
    neu_isenburg: Person
    frankfurt: Person
    hessen_mobil: Person
    autobahn: Person
    kreis_offenbach: Person
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)


def person(session, org: Organisation, email: str, role: Role) -> Person:
    user = identity.create_user(session, org, email, email.split("@")[0], role)
    _, secret = identity.create_token(session, user, "test")
    return Person(user.id, org.id, secret)


def build_he(session, prefix: str = "") -> He:
    operator = identity.create_organisation(session, "he", OrgKind.operator, f"{prefix}Glasfaser Test GmbH")
    other = identity.create_organisation(session, "he", OrgKind.operator, f"{prefix}Faser Konkurrenz AG")
    office = identity.create_organisation(session, "he", OrgKind.operating_office, f"{prefix}Servicestelle Test")
    ni = authority_org(session, key=NEU_ISENBURG)
    ffm = authority_org(session, key=FRANKFURT)
    mobil = authority_org(session, name="Hessen Mobil")
    autobahn = authority_org(session, name="Die Autobahn GmbH des Bundes")
    kreis = authority_org(session, key=KREIS_OFFENBACH)
    he = He(
        operator=person(session, operator, f"{prefix}planer@glasfaser-test.example", Role.operator_member),
        colleague=person(session, operator, f"{prefix}kollegin@glasfaser-test.example", Role.operator_member),
        other_operator=person(session, other, f"{prefix}planer@faser-konkurrenz.example", Role.operator_member),
        admin=person(session, office, f"{prefix}admin@servicestelle-test.example", Role.tenant_admin),
        neu_isenburg=person(session, ni, f"{prefix}tiefbau@neu-isenburg.example", Role.authority_reviewer),
        frankfurt=person(session, ffm, f"{prefix}asv@frankfurt.example", Role.authority_reviewer),
        hessen_mobil=person(session, mobil, f"{prefix}pruefer@hessen-mobil.example", Role.authority_admin),
        autobahn=person(session, autobahn, f"{prefix}pruefer@autobahn.example", Role.authority_reviewer),
        kreis_offenbach=person(session, kreis, f"{prefix}pruefer@kreis-offenbach.example", Role.authority_reviewer),
        orgs={"operator": operator.id, "other_operator": other.id, "neu_isenburg": ni.id, "frankfurt": ffm.id,
              "hessen_mobil": mobil.id, "autobahn": autobahn.id, "kreis_offenbach": kreis.id},
    )
    session.flush()
    return he


@pytest.fixture
def he(session, he_data) -> He:
    """People in tenant he, inside the test's rolled-back transaction; the Hessen catalogue loaded."""
    people = build_he(session)
    load_catalogue_file(session, "he", PROJECT_ROOT / "data" / "tenants" / "he_conditions.toml")
    session.commit()
    return people

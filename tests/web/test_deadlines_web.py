"""The inbox and the case show where a period ends and why it was moved (§ 193 BGB): "Fristende: Freitag,
28.05.2027 — der 27.05.2027 ist Fronleichnam", and the statutory day it was moved from."""

from __future__ import annotations

from datetime import datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from permits import core
from permits.models import Application, Case
from tests.web.test_web_app import VIEWPORT, k163_route, login, open_case, submit_by_api, watch

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_inbox_and_case_show_the_moved_end_and_why(server, people, browser, engine):
    route = k163_route(engine)
    reference = submit_by_api(server, people.operator.token, route, "Glasfaser Heusenstamm, Fronleichnam")
    # the application arrived on Saturday 27 February 2027 (the server runs on the real clock, so the receipt is
    # set here, with the service's own clock code): the month ends after Easter, the period after Fronleichnam
    with Session(engine) as session:
        case = session.scalars(select(Case).join(Application, Application.id == Case.application_id)
                               .where(Application.reference == reference,
                                      Case.authority_org_id == people.reviewer.organisation_id)).one()
        core.start_clock(session, case, datetime.fromisoformat("2027-02-27T10:00:00+01:00"))
        session.commit()
    errors: list[str] = []
    ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE")
    try:
        au = watch(ctx.new_page(), errors)
        login(au, server, people.reviewer)
        au.goto(f"{server}/#/inbox?status=all")
        row = au.locator("#inbox-table tbody tr", has_text=reference)
        expect(row).to_contain_text("28.5.2027")
        moved = row.locator("small.moved")
        expect(moved).to_have_text("(verschoben vom 27.5.2027)")
        expect(moved).to_have_attribute("title", "der 27.05.2027 ist Fronleichnam")
        open_case(au, server, reference)
        expect(au.locator("dt:has-text('Fristende') + dd")).to_contain_text(
            "Freitag, 28.05.2027 — der 27.05.2027 ist Fronleichnam (")
        expect(au.locator("#completeness-end")).to_have_text(
            "Dienstag, 30.03.2027 — der 27.03.2027 ist ein Samstag, der 28.03.2027 ist ein Sonntag, der 29.03.2027 "
            "ist Ostermontag")
        assert errors == []
    finally:
        ctx.close()

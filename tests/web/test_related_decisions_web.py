"""§ 127 (5) TKG in the browser: the tenant's rules make the traffic authority *decide* (a traffic order) instead of
giving a statement. The pipeline (real worker) opens the traffic order in the body's list; the Kreis reviewer sees
it on the consent case and is asked for a reason to decide without it; the body fills in the traffic order (period
prefilled from the application, times, signs plan, detour) with a condition of the traffic order's own catalogue and
grants; then the reviewer grants the consent without being asked, and the operator downloads the bundle."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_web_app import (
    ARTIFACTS,
    PLAN_PDF,
    VIEWPORT,
    k163_route,
    login,
    shot,
    submitted_by_api,
    watch,
)

from permits.participation import service as participation
from permits.participation.models import ParticipationRuleSet
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _traffic_as_decision(engine):
    """Make the traffic rule a decision for tenant he; → a function that restores what was there."""
    with Session(bind=engine) as session:
        row = session.scalars(select(ParticipationRuleSet).where(ParticipationRuleSet.tenant_key == "he")).first()
        before = (copy.deepcopy(row.rules), row.source) if row else None
        data = copy.deepcopy(before[0] if before else participation.DEFAULT_RULES)
        for rule in data["rules"]:
            if rule["role"] == "traffic":
                rule["procedure"] = "decision"
        participation.store_rules(session, "he", participation.parse_rules(data), "browser test",
                                  datetime.now(timezone.utc))
        session.commit()

    def restore() -> None:
        with Session(bind=engine) as session:
            if before is None:
                session.query(ParticipationRuleSet).filter(ParticipationRuleSet.tenant_key == "he").delete()
            else:
                participation.store_rules(session, "he", participation.parse_rules(before[0]), before[1],
                                          datetime.now(timezone.utc))
            session.commit()
    return restore


def test_traffic_order_issued_with_the_consent(server, people, browser, engine):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    restore = _traffic_as_decision(engine)
    errors: list[str] = []
    try:
        app = submitted_by_api(server, people.operator.token, k163_route(engine), "Querung K 163 mit Sperrung",
                               traffic_restrictions=[{"kind": "lane_closure", "road": "K 163",
                                                      "description": "Fahrstreifen halbseitig gesperrt, Ampel",
                                                      "start": "2027-03-08", "end": "2027-03-19"}],
                               attachments=[("verkehrszeichenplan-k163.pdf", PLAN_PDF, "traffic_plan")])
        body_headers = {"Authorization": f"Bearer {people.body.token}"}

        def order_case() -> str | None:
            items = httpx.get(f"{server}/api/v1/cases", headers=body_headers, timeout=10).json()["items"]
            return next((c["id"] for c in items if c["application_id"] == app["id"]), None)

        wait_for(lambda: order_case() is not None, 60, interval=0.5, what="the traffic order from the pipeline")
        order_id = order_case()
        consent_id = app["cases"][0]["id"]
        au_ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE")
        bd_ctx = browser.new_context(viewport=VIEWPORT, locale="de-DE")
        try:
            # --- the Kreis reviewer: the traffic order on the consent case, and the reason asked for ------------
            au = watch(au_ctx.new_page(), errors)
            login(au, server, people.reviewer)
            au.goto(f"{server}/#/case/{consent_id}")
            related = au.locator("#related-decisions > li")
            expect(related).to_have_count(1, timeout=20_000)
            expect(related).to_contain_text("Verkehrsrechtliche Anordnung (§ 45 StVO)")
            expect(related).to_contain_text("eingegangen")
            expect(au.locator("#related-missing")).to_contain_text("Verkehrsrechtliche Anordnung")
            expect(au.locator("#related-missing-reason")).to_be_visible()
            shot(au, "30-consent-with-open-traffic-order")

            # --- the traffic authority: its decision in its list, the traffic order form -------------------------
            bd = watch(bd_ctx.new_page(), errors)
            login(bd, server, people.body)
            row = bd.locator("#body-decisions tbody tr", has_text=app["reference"])
            expect(row).to_contain_text("Verkehrsrechtliche Anordnung (§ 45 StVO)")
            row.get_by_role("link", name=app["reference"]).click()
            expect(bd.locator("#case-kind")).to_contain_text("Verkehrsrechtliche Anordnung")
            form = bd.locator("#form-decision")
            order = form.locator("#traffic-order")
            expect(order.get_by_label("Gültig ab")).to_have_value("2027-03-08")       # from the application
            expect(order.get_by_label("Gültig bis")).to_have_value("2027-03-19")
            expect(order.get_by_label("Verkehrszeichenplan (Anlage)")).to_contain_text("verkehrszeichenplan-k163.pdf")
            order.locator("input[name=time_start]").fill("09:00")
            order.locator("input[name=time_end]").fill("15:00")
            order.get_by_label("Umleitung").fill("Über die L 3117, beschildert nach Plan")
            conditions = form.get_by_role("group", name="Nebenbestimmungen aus dem Katalog")
            expect(conditions).to_contain_text("Beschilderung nach Verkehrszeichenplan")   # its own catalogue
            expect(conditions).not_to_contain_text("Wiederherstellung der Verkehrsfläche")
            conditions.locator("label.check", has_text="Beschilderung nach Verkehrszeichenplan") \
                .get_by_role("checkbox").check()
            expect(form.locator("#pending-statements")).to_have_count(0)
            expect(form.locator("#related-missing")).to_have_count(0)
            shot(bd, "31-body-traffic-order-form")
            form.get_by_role("button", name="Entscheidung absenden").click()
            expect(bd.locator("#case-status")).to_have_text("zugestimmt", timeout=15_000)
            decided = httpx.get(f"{server}/api/v1/cases/{order_id}", headers=body_headers, timeout=10).json()
            assert decided["decision"]["traffic_order"]["times_of_day"] == [
                {"weekdays": [1, 2, 3, 4, 5], "start": "09:00:00", "end": "15:00:00"}]
            assert decided["decision"]["traffic_order"]["detour"] == "Über die L 3117, beschildert nach Plan"
            assert [c["code"] for c in decided["decision"]["conditions"]] == ["HE-VA01"]

            # --- the reviewer again: nothing missing any more, the consent goes out ------------------------------
            au.reload()
            expect(au.locator("#related-decisions > li")).to_contain_text("zugestimmt", timeout=15_000)
            expect(au.locator("#related-missing")).to_have_count(0)
            au.locator("#form-decision").get_by_role("button", name="Entscheidung absenden").click()
            expect(au.locator("#case-status")).to_have_text("zugestimmt", timeout=15_000)
            shot(au, "32-consent-granted-with-traffic-order")
        finally:
            au_ctx.close()
            bd_ctx.close()
    finally:
        restore()
    assert not errors, "browser errors:\n" + "\n".join(errors)

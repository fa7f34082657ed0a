"""What makes the decision document a letter an authority signs: the letterhead and the addressee's postal address
(lines, never "None"), the official who decided and their function, the validity of the consent, the fee statement,
and the route's values in words (``permits.labels``). Pure functions over plain data: ``service.gather`` reads the
rows and calls them; ``tests/permits/test_letter.py`` tests them without a database.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from geo.rules import Fees
from permits import deadlines
from permits.labels import humanise, label

GRANTING = ("granted", "partially_granted")


def lines(text: str | None) -> list[str]:
    """A postal address as the lines of a letter: one per line of the stored text (or per comma when it is one
    line), blanks dropped."""
    if not text or not text.strip():
        return []
    parts = text.splitlines() if "\n" in text else text.split(",")
    return [" ".join(p.split()) for p in parts if p.strip()]


def authority_block(name: str, address: str | None, phone: str | None, email: str | None,
                    website: str | None) -> dict[str, Any]:
    """The letterhead; ``missing`` names what the letter would need and the authority has not entered (the admin
    sees it as a warning; the letter is laid out without it)."""
    address_lines = lines(address)
    missing = [what for what, value in (("address", address_lines), ("phone", phone), ("email", email)) if not value]
    head = [] if address_lines and address_lines[0].startswith(name) else [name]
    return {"name": name, "address_lines": address_lines, "sender_line": " · ".join([*head, *address_lines]),
            "phone": phone or None, "email": email or None, "website": website or None, "missing": missing}


def addressee(applicant_name: str, applicant_address: str | None, contact: str | None,
              representative: dict[str, Any] | None) -> dict[str, Any]:
    """Who the letter goes to: the representative with power of attorney when the application names one (§ 14 (3)
    VwVfG), for the applicant; otherwise the applicant, for the attention of its contact."""
    rep = representative or {}
    if rep.get("name") or rep.get("organisation"):
        head = [x for x in (rep.get("organisation"), rep.get("name")) if x]
        return {"lines": [*head, *lines(rep.get("address"))], "on_behalf_of": applicant_name,
                "applicant_lines": [applicant_name, *lines(applicant_address)], "represented": True}
    attention = [f"z. Hd. {contact}"] if contact else []
    return {"lines": [applicant_name, *attention, *lines(applicant_address)], "on_behalf_of": None,
            "applicant_lines": [applicant_name, *lines(applicant_address)], "represented": False}


def validity(outcome: str, effective_on: date | None, months: int) -> dict[str, Any] | None:
    """Until when works must start for the consent to stay valid; None for a refusal or without a limit."""
    if outcome not in (*GRANTING, "deemed_granted") or effective_on is None or months <= 0:
        return None
    return {"months": months, "start_by": deadlines.consent_valid_until(effective_on, months)}


def euro(amount: float) -> str:
    """1234.5 → "1.234,50 €"."""
    return f"{amount:,.2f} €".replace(",", "\u00a0").replace(".", ",").replace("\u00a0", ".")


def fee_statement(fees: Fees | None, outcome: str, length_m: float | None, decided_on: date | None
                  ) -> dict[str, Any] | None:
    """The cost decision of the document: free with its legal basis, or the amount computed from the schedule
    (base + per metre of this authority's part, within min/max; a refusal pays ``refusal_factor`` of it), or — no
    schedule on file — that the costs are decided separately. None for a deemed approval (no decision was made)."""
    if outcome == "deemed_granted":
        return None
    if fees is None:
        return {"kind": "separate", "text": "Die Kostenentscheidung bleibt einem gesonderten Bescheid vorbehalten."}
    if fees.free:
        return {"kind": "free", "text": f"Dieser Bescheid ergeht gebührenfrei ({fees.legal_basis}).",
                "legal_basis": fees.legal_basis}
    metres = 0.0 if length_m is None or math.isnan(length_m) else float(length_m)
    amount = fees.base_eur + fees.per_metre_eur * metres
    amount = max(amount, fees.min_eur)
    if fees.max_eur is not None:
        amount = min(amount, fees.max_eur)
    if outcome == "refused":
        amount *= fees.refusal_factor
    amount = round(amount + 1e-9, 2)
    how = []
    if fees.base_eur:
        how.append(f"Grundgebühr {euro(fees.base_eur)}")
    if fees.per_metre_eur:
        how.append(f"{euro(fees.per_metre_eur)} je Meter × {f'{metres:,.0f}'.replace(',', '.')} m")
    due = (decided_on + timedelta(days=fees.payment_days)) if decided_on else None
    return {"kind": "schedule", "amount": amount, "amount_text": euro(amount), "calculation": " + ".join(how),
            "legal_basis": fees.legal_basis, "payment_days": fees.payment_days, "due": due,
            "text": f"Für diesen Bescheid wird eine Verwaltungsgebühr von {euro(amount)} festgesetzt "
                    f"({fees.legal_basis})."}


def piece_row(piece: dict[str, Any]) -> dict[str, Any]:
    """One row of the route table, every value in words."""
    return {"road": " ".join(x for x in (piece.get("road_ref"), piece.get("road_name")) if x) or "ohne Namen",
            "road_class": label("road_class", piece.get("road_class")),
            "gemeinde": piece.get("gemeinde") or "–", "length_m": piece.get("length_m"),
            "rule": humanise(piece.get("rule"))}


def section_row(section: dict[str, Any]) -> dict[str, Any]:
    return {**section, "kind_label": label("feature_kind", section.get("kind") or "trench"),
            "method_label": label("laying_method", section.get("method")) if section.get("method") else None}


def official(decided_by: dict[str, Any] | None, user_name: str | None, job_title: str | None) -> dict[str, Any] | None:
    """The official who decided: the user's current name and function (the name recorded with the decision when the
    user is gone)."""
    if not decided_by:
        return None
    name = user_name or decided_by.get("name")
    return {"name": name, "function": job_title or None} if name else None

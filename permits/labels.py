"""German labels for the values users read: road classes, OSM road types, laying methods, case and application
statuses, outcomes, statement answers, kinds of route features and protected areas. One table, used by the decision
document (``permits/documents``) and meant for the web app too (``LABELS`` is plain data, JSON-serialisable).

``label(table, value)`` never returns a raw key or "None": an unknown value is shown with its key in brackets
("unbekannt (xyz)") so that a reader sees something is missing from the table, and ``tests/permits/test_labels.py``
checks that every value the code knows has its label.
"""

from __future__ import annotations

import re

LABELS: dict[str, dict[str, str]] = {
    "road_class": {
        "autobahn": "Bundesautobahn", "bund": "Bundesstraße", "land": "Landesstraße", "kreis": "Kreisstraße",
        "gemeinde": "Gemeindestraße",
    },
    # OSM highway=* values as they reach a document (the resolution's rule texts, road segments)
    "highway": {
        "motorway": "Autobahn", "motorway_link": "Autobahn (Anschlussstelle)",
        "trunk": "Bundesstraße (autobahnähnlich)",
        "trunk_link": "Bundesstraße (Zubringer)", "primary": "Hauptstraße", "primary_link": "Hauptstraße (Zubringer)",
        "secondary": "Nebenstraße (überörtlich)", "secondary_link": "Zubringer (überörtlich)",
        "tertiary": "Verbindungsstraße", "tertiary_link": "Zubringer (Verbindungsstraße)",
        "unclassified": "Gemeindeverbindungsstraße", "residential": "Wohnstraße",
        "living_street": "verkehrsberuhigter Bereich",
        "service": "Zufahrt", "pedestrian": "Fußgängerzone", "footway": "Gehweg", "cycleway": "Radweg", "path": "Weg",
        "track": "Wirtschaftsweg", "steps": "Treppe", "road": "Straße", "busway": "Busspur",
    },
    "laying_method": {
        "open_trench": "offene Bauweise", "micro_trenching": "Micro-Trenching", "mini_trenching": "Mini-Trenching",
        "directional_drilling": "Spülbohrung (HDD)", "press_drilling": "Pressbohrung", "ploughing": "Pflugverfahren",
        "milling": "Fräsverfahren", "aerial": "oberirdische Verlegung", "existing_duct": "vorhandenes Leerrohr",
    },
    "case_status": {
        "received": "eingegangen", "incomplete": "unvollständig", "in_review": "in Prüfung", "granted": "erteilt",
        "partially_granted": "teilweise erteilt", "refused": "versagt", "deemed_granted": "gilt als erteilt",
        "forwarded": "abgegeben", "withdrawn": "zurückgenommen", "closed": "geschlossen",
    },
    "application_status": {
        "draft": "Entwurf", "submitted": "eingereicht", "information_requested": "Nachforderung",
        "granted": "erteilt", "partially_granted": "teilweise erteilt", "refused": "versagt",
        "withdrawn": "zurückgenommen",
    },
    "statement_answer": {
        "agree": "Zustimmung", "agree_with_conditions": "Zustimmung mit Auflagen", "object": "Einwendungen",
    },
    "feature_kind": {
        "trench": "Trasse", "cabinet": "Verteiler (Kabelverzweiger)", "manhole": "Schacht", "pit": "Baugrube",
        "house_connection": "Hausanschluss", "area": "Fläche",
    },
    "area_kind": {"water": "Wasserschutzgebiet", "nature": "Naturschutzgebiet", "monument": "Kulturdenkmal"},
    "document_validity": {"valid": "gültig", "superseded": "ersetzt durch eine neuere Fassung",
                          "revoked": "widerrufen"},
}

MISSING = "–"


def label(table: str, value: str | None) -> str:
    """The German label of a value; "–" for none; "unbekannt (value)" for a value missing from the table."""
    if value is None or value == "":
        return MISSING
    found = LABELS[table].get(str(value))
    return found if found is not None else f"unbekannt ({value})"


_HIGHWAY_WORD = re.compile(r"\b(" + "|".join(sorted((re.escape(k) for k in LABELS["highway"]), key=len,
                                                    reverse=True)) + r")\b")


def humanise(text: str | None) -> str:
    """A text written by the resolution (the rule that decided a piece) with OSM road types in words:
    "Anschlussrampe (trunk_link) an B 44" → "Anschlussrampe (Bundesstraße (Zubringer)) an B 44". Words that are
    only lower-case OSM keys are replaced; names ("Service-Center-Straße") are left alone (case-sensitive)."""
    if not text:
        return MISSING
    return _HIGHWAY_WORD.sub(lambda m: LABELS["highway"][m.group(1)], text)

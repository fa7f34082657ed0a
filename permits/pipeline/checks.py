"""The ``resolution`` and ``checks`` steps of the review pipeline (see ``permits.pipeline.service``).

Plausibility checks compare each trench section's dimensions with the ranges that are usual for its laying method
(``TYPICAL_CM``; rough guidance for the reviewer, not legal limits), look for a missing § 127 (7) declaration where
the depth is reduced in an open trench, report route pieces outside public or in private roads, and traffic
restrictions outside the planned period. Findings carry ``severity`` (warning | info), a stable ``code``, a German
``message`` and where (``field``). Conflict checks (overlapping works, Aufbruchsperren) are not part of the pipeline
yet; the result of the step says so.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from geo.service import resolve
from permits import repository
from permits.models import Application
from permits.participation import service as participation
from permits.pipeline.models import PipelineRun

# (min depth, max depth, min width, max width) in cm that are usual per laying method; None: not checked.
TYPICAL_CM: dict[str, tuple[int | None, int | None, int | None, int | None]] = {
    "open_trench": (40, 200, 20, 150),
    "micro_trenching": (7, 45, 2, 15),
    "mini_trenching": (30, 70, 10, 30),
    "milling": (20, 120, 5, 30),
    "ploughing": (40, 120, 5, 40),
    "directional_drilling": (60, 1000, None, None),
    "press_drilling": (80, 600, None, None),
}
METHOD_DE = {"open_trench": "offene Bauweise", "micro_trenching": "Micro-Trenching", "mini_trenching":
             "Mini-Trenching", "milling": "Fräsverfahren", "ploughing": "Pflugverfahren", "directional_drilling":
             "Spülbohrung", "press_drilling": "Pressbohrung", "aerial": "oberirdisch", "existing_duct":
             "vorhandenes Leerrohr"}
CONFLICTS_NOTE = ("Konfliktprüfung (überlappende Baumaßnahmen, Aufbruchsperren) ist noch nicht Teil der "
                  "automatischen Prüfung / conflict checks are not part of the pipeline yet")


def _finding(severity: str, code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    out = {"severity": severity, "code": code, "message": message}
    if field:
        out["field"] = field
    out.update(extra)
    return out


def plausibility(content: dict[str, Any], resolution: dict[str, Any] | None) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []
    for i, feature in enumerate((content.get("sections") or {}).get("features") or []):
        p = feature.get("properties") or {}
        method = p.get("laying_method")
        if p.get("kind") != "trench" or not method:
            continue
        where = f"sections.features[{i}].properties"
        depth, width = p.get("depth_cm"), p.get("width_cm")
        label = METHOD_DE.get(method, method)
        if method == "open_trench" and depth is not None and depth < 60 and not p.get("reduced_depth"):
            findings.append(_finding("warning", "reduced-depth-not-declared",
                                     f"Abschnitt {i + 1}: {depth} cm Verlegetiefe in offener Bauweise, aber keine "
                                     "Erklärung der geringeren Verlegetiefe nach § 127 Abs. 7 TKG",
                                     f"{where}.reduced_depth"))
        lo_d, hi_d, lo_w, hi_w = TYPICAL_CM.get(method, (None, None, None, None))
        if depth is not None and lo_d is not None and not lo_d <= depth <= hi_d:
            findings.append(_finding("warning", "depth-atypical", f"Abschnitt {i + 1}: {depth} cm Tiefe ist für "
                                     f"{label} untypisch (üblich {lo_d}–{hi_d} cm)", f"{where}.depth_cm"))
        if width is not None and lo_w is not None and not lo_w <= width <= hi_w:
            findings.append(_finding("warning", "width-atypical", f"Abschnitt {i + 1}: {width} cm Breite ist für "
                                     f"{label} untypisch (üblich {lo_w}–{hi_w} cm)", f"{where}.width_cm"))
    if resolution:
        outside = (resolution.get("outside_public_roads") or {}).get("length_m") or 0
        private = (resolution.get("private_roads") or {}).get("length_m") or 0
        if outside:
            findings.append(_finding("warning", "outside-public-roads",
                                     f"{outside:.1f} m der Trasse liegen außerhalb öffentlicher Straßen: dafür ist "
                                     "die Zustimmung der Grundstückseigentümer nötig", "sections", length_m=outside))
        if private:
            findings.append(_finding("warning", "private-roads", f"{private:.1f} m der Trasse liegen in "
                                     "Privatwegen (kein Verfahren nach § 127 TKG)", "sections", length_m=private))
        for w in resolution.get("warnings") or []:
            findings.append(_finding("info", f"resolution-{w.get('code')}", w.get("message") or w.get("code"),
                                     "sections"))
    start, end = _date(content.get("planned_start")), _date(content.get("planned_end"))
    for i, tr in enumerate(content.get("traffic_restrictions") or []):
        t_start, t_end = _date(tr.get("start")), _date(tr.get("end"))
        if start and end and ((t_start and t_start < start) or (t_end and t_end > end)):
            findings.append(_finding("warning", "restriction-outside-period",
                                     f"Verkehrsbeschränkung {i + 1} liegt außerhalb des geplanten Bauzeitraums "
                                     f"({start.isoformat()} bis {end.isoformat()})", f"traffic_restrictions[{i}]"))
    if start and end and (end - start).days > 730:
        findings.append(_finding("info", "long-period", f"Geplanter Bauzeitraum von {(end - start).days} Tagen "
                                 "(mehr als zwei Jahre)", "planned_end"))
    return findings


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _summary(resolution: dict[str, Any]) -> dict[str, Any]:
    return {
        "authorities": [{"id": a.get("id"), "name": a.get("name"), "length_m": a.get("length_m"),
                         "pieces": len(a.get("pieces") or [])} for a in resolution.get("authorities") or []],
        "total_length_m": resolution.get("total_length_m"),
        "outside_public_roads_m": (resolution.get("outside_public_roads") or {}).get("length_m"),
        "private_roads_m": (resolution.get("private_roads") or {}).get("length_m"),
        "warnings": [w.get("code") for w in resolution.get("warnings") or []],
    }


def step_resolution(session: Session, run: PipelineRun, app: Application, now: datetime) -> dict[str, Any]:
    """Resolve the version's route again on the current network and record it next to what the cases came from."""
    version = repository.version_row(session, app.id, run.version)
    content = version.content
    fresh = resolve(session, app.tenant_key, content["sections"], content.get("crs") or "EPSG:4326")
    summary = _summary(fresh)
    stored = _summary(version.resolution or {})
    same = {(a["id"], round(a["length_m"] or 0)) for a in summary["authorities"]} == \
        {(a["id"], round(a["length_m"] or 0)) for a in stored["authorities"]}
    return {**summary, "computed_ms": fresh.get("computed_ms"), "matches_submission": same,
            "note": None if same else "Das Straßennetz hat sich seit der Einreichung geändert; die Vorgänge beruhen "
                                      "auf der Zuordnung bei Einreichung."}


def step_checks(session: Session, run: PipelineRun, app: Application, now: datetime) -> dict[str, Any]:
    version = repository.version_row(session, app.id, run.version)
    findings = plausibility(version.content, version.resolution)
    plan = participation.evaluate(session, app.tenant_key, version.content, version.resolution or {})
    return {
        "plausibility": {"findings": findings, "warnings": sum(f["severity"] == "warning" for f in findings)},
        "participation": plan,
        "conflicts": {"checked": False, "note": CONFLICTS_NOTE},
    }

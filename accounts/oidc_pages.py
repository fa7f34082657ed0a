"""The pages a browser sees when a sign-in through the tenant's OpenID Provider fails: what happened and what to do,
in German with English below, and a link back to the sign-in page.

The callback is a top-level navigation from the IdP, so the answer is a page, not problem+json. It is plain HTML
(no script, no inline style: the Content-Security-Policy of breitband/headers.py applies to it as to every answer)
and carries ``Cache-Control: no-store``; its look (the web app's blue bar, a card, the same font) comes from the small
stylesheet PAGE_CSS, served as ``/auth/oidc/page.css`` (accounts/oidc_endpoints.py), so the page needs nothing of
the built web app. The reason's slug is on the page (``data-reason``) and in the security
event, so support and tests can tell the cases apart without parsing the prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from fastapi.responses import HTMLResponse

SIGN_IN_PAGE = "/#/login"
STYLESHEET = "/auth/oidc/page.css"
# the web app's colours and font (web/src/style.css), for a page that stands alone
PAGE_CSS = """:root { --fg: #1b1b1b; --muted: #4a4a4a; --accent: #0b4f8a; --line: #c9c9c9;
  font: 15px/1.45 system-ui, "Segoe UI", Roboto, Arial, sans-serif; color: var(--fg); }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }
.top { padding: .5rem 1rem; background: var(--accent); color: #fff; font-weight: 700; font-size: 1.15rem; }
main { max-width: 40rem; margin: 2rem auto; padding: 1rem 1.25rem; border: 1px solid var(--line);
  border-radius: 6px; background: #fafafa; overflow-wrap: anywhere; }
@media (max-width: 40rem) { main { margin: 1rem .75rem; } }
h1 { font-size: 1.4rem; margin: .25rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
hr { border: 0; border-top: 1px solid var(--line); margin: 1.5rem 0; }
section[lang="en"] { color: var(--muted); }
.back { font-weight: 600; }
small { color: var(--muted); }
"""
RETRY_DE = "Bitte melden Sie sich erneut an."
RETRY_EN = "Please sign in again."
ADMIN_DE = "Wenden Sie sich an die Administration Ihrer Organisation oder an die Servicestelle des Landes."
ADMIN_EN = "Ask your organisation's administrator or the state's operating office."


@dataclass(frozen=True)
class Reason:
    status: int
    de: str          # what happened (German)
    en: str          # what happened (English)
    todo_de: str     # what to do
    todo_en: str


REASONS: dict[str, Reason] = {
    "not-configured": Reason(
        404, "Für dieses Land ist keine Anmeldung über einen Identitätsanbieter eingerichtet.",
        "Sign-in through an identity provider is not set up for this state.",
        "Melden Sie sich mit E-Mail-Adresse und Passwort an.", "Sign in with your e-mail address and password."),
    "idp-unavailable": Reason(
        502, "Der Identitätsanbieter ist nicht erreichbar oder hat eine ungültige Antwort gegeben.",
        "The identity provider could not be reached or gave an invalid answer.",
        "Versuchen Sie es in einigen Minuten erneut. " + ADMIN_DE, "Try again in a few minutes. " + ADMIN_EN),
    "idp-error": Reason(
        400, "Der Identitätsanbieter hat die Anmeldung abgelehnt oder abgebrochen.",
        "The identity provider refused or cancelled the sign-in.", RETRY_DE, RETRY_EN),
    "state-unknown": Reason(
        400, "Diese Anmeldung ist unbekannt oder wurde bereits verwendet (zum Beispiel durch Neuladen der Seite "
             "oder über den Zurück-Knopf).",
        "This sign-in is unknown or was used already (for example by reloading the page or the back button).",
        RETRY_DE, RETRY_EN),
    "state-mismatch": Reason(
        400, "Die Anmeldung wurde in einem anderen Browser oder Fenster begonnen als sie beendet wurde.",
        "The sign-in was started in another browser or window than the one it ended in.",
        "Beginnen Sie die Anmeldung in diesem Browser neu.", "Start the sign-in again in this browser."),
    "state-expired": Reason(
        400, "Die Anmeldung hat zu lange gedauert (mehr als 10 Minuten) und ist abgelaufen.",
        "The sign-in took too long (more than 10 minutes) and has expired.", RETRY_DE, RETRY_EN),
    "issuer-mismatch": Reason(
        400, "Die Antwort kam von einem anderen Identitätsanbieter als dem, bei dem die Anmeldung begonnen wurde.",
        "The answer came from another identity provider than the one the sign-in was started with.",
        RETRY_DE + " " + ADMIN_DE, RETRY_EN + " " + ADMIN_EN),
    "token-exchange-failed": Reason(
        400, "Der Identitätsanbieter hat den Anmeldecode nicht eingelöst (abgelaufen, bereits verwendet oder für "
             "eine andere Anwendung ausgestellt).",
        "The identity provider did not redeem the sign-in code (expired, used already or issued to another "
        "application).", RETRY_DE, RETRY_EN),
    "signature": Reason(
        400, "Die Signatur des Identitätsnachweises (ID-Token) ist ungültig.",
        "The signature of the identity proof (ID token) is invalid.",
        RETRY_DE + " Wenn es wieder geschieht: " + ADMIN_DE, RETRY_EN + " If it happens again: " + ADMIN_EN),
    "audience": Reason(
        400, "Der Identitätsnachweis (ID-Token) wurde für eine andere Anwendung ausgestellt.",
        "The identity proof (ID token) was issued to another application.", ADMIN_DE, ADMIN_EN),
    "nonce": Reason(
        400, "Der Identitätsnachweis (ID-Token) gehört nicht zu dieser Anmeldung (nonce stimmt nicht überein).",
        "The identity proof (ID token) does not belong to this sign-in (the nonce does not match).",
        RETRY_DE, RETRY_EN),
    "token-expired": Reason(
        400, "Der Identitätsnachweis (ID-Token) ist abgelaufen oder noch nicht gültig.",
        "The identity proof (ID token) has expired or is not valid yet.",
        RETRY_DE + " Wenn es wieder geschieht, prüfen Sie die Uhrzeit Ihres Rechners.",
        RETRY_EN + " If it happens again, check your computer's clock."),
    "token-invalid": Reason(
        400, "Der Identitätsnachweis (ID-Token) ist unvollständig oder ungültig.",
        "The identity proof (ID token) is incomplete or invalid.", ADMIN_DE, ADMIN_EN),
    "email-missing": Reason(
        403, "Der Identitätsanbieter hat keine E-Mail-Adresse übermittelt.",
        "The identity provider sent no e-mail address.", ADMIN_DE, ADMIN_EN),
    "email-unverified": Reason(
        403, "Der Identitätsanbieter hat Ihre E-Mail-Adresse nicht als bestätigt gemeldet.",
        "The identity provider has not confirmed your e-mail address as verified.",
        "Bestätigen Sie Ihre E-Mail-Adresse beim Identitätsanbieter und melden Sie sich erneut an.",
        "Verify your e-mail address with the identity provider and sign in again."),
    "domain-not-allowed": Reason(
        403, "Die Domain Ihrer E-Mail-Adresse ist für die Anmeldung über diesen Identitätsanbieter nicht "
             "zugelassen.",
        "Your e-mail address's domain is not allowed to sign in through this identity provider.",
        ADMIN_DE, ADMIN_EN),
    "organisation-not-mapped": Reason(
        403, "Ihre Organisation beim Identitätsanbieter ist keiner Organisation in Breitband zugeordnet.",
        "Your organisation at the identity provider is not mapped to an organisation in Breitband.",
        ADMIN_DE, ADMIN_EN),
    "role-not-mapped": Reason(
        403, "Ihre Rolle beim Identitätsanbieter ist keiner Rolle in Breitband zugeordnet (oder passt nicht zur Art "
             "Ihrer Organisation).",
        "Your role at the identity provider is not mapped to a role in Breitband (or does not fit your "
        "organisation's kind).", ADMIN_DE, ADMIN_EN),
    "organisation-mismatch": Reason(
        403, "Ihr Konto gehört in Breitband zu einer anderen Organisation als beim Identitätsanbieter.",
        "Your account belongs to another organisation in Breitband than at the identity provider.",
        ADMIN_DE, ADMIN_EN),
    "account-linked-elsewhere": Reason(
        403, "Das Konto mit Ihrer E-Mail-Adresse ist bereits mit einer anderen Identität verknüpft.",
        "The account with your e-mail address is linked to another identity already.", ADMIN_DE, ADMIN_EN),
    "user-unknown": Reason(
        403, "Für Ihre E-Mail-Adresse gibt es kein Konto, und Konten werden nicht automatisch angelegt.",
        "There is no account for your e-mail address, and accounts are not created automatically.",
        "Bitten Sie die Administration Ihrer Organisation um eine Einladung.",
        "Ask your organisation's administrator for an invitation."),
    "too-many-attempts": Reason(
        429, "Von Ihrer Adresse kamen in kurzer Zeit zu viele fehlgeschlagene Anmeldungen.",
        "Too many failed sign-ins came from your address in a short time.",
        "Warten Sie einige Minuten und versuchen Sie es dann erneut.", "Wait a few minutes, then try again."),
    "user-deactivated": Reason(
        403, "Ihr Konto ist deaktiviert.", "Your account is deactivated.", ADMIN_DE, ADMIN_EN),
}


def page(reason: str, *, detail: str | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    """The page for ``reason`` (a key of REASONS), with its status; ``detail`` (e.g. the IdP's error code) is
    shown as it came, escaped; ``headers`` besides no-store (Retry-After)."""
    r = REASONS[reason]
    extra = f"\n<p><small>{escape(detail)}</small></p>" if detail else ""
    body = f"""<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Anmeldung nicht möglich – Sign-in failed</title>
<link rel="stylesheet" href="{STYLESHEET}">
</head>
<body>
<header class="top">Breitband</header>
<main data-reason="{escape(reason)}">
<h1>Anmeldung nicht möglich</h1>
<p>{escape(r.de)}</p>
<p><strong>Was Sie tun können:</strong> {escape(r.todo_de)}</p>
<p class="back"><a href="{SIGN_IN_PAGE}">Zurück zur Anmeldung</a></p>
<hr>
<section lang="en">
<h2>Sign-in failed</h2>
<p>{escape(r.en)}</p>
<p><strong>What you can do:</strong> {escape(r.todo_en)}</p>
<p class="back"><a href="{SIGN_IN_PAGE}">Back to sign-in</a></p>
</section>{extra}
</main>
</body>
</html>
"""
    return HTMLResponse(body, status_code=r.status, headers={**(headers or {}), "Cache-Control": "no-store"})


__all__ = ["PAGE_CSS", "REASONS", "Reason", "page", "SIGN_IN_PAGE", "STYLESHEET"]

"""Webhook delivery log: status, timing and an error class only (issue 11, finding 5).

Tries written before kept up to 500 characters of the receiver's answer (response_excerpt) and the text of the
connection error, which made the log a way to read what answers at an address. The API stopped showing them; this
removes them from the table too: webhook tries lose response_excerpt, and their error (and the delivery's
last_error) is reduced to its class with the same rules as notifications.delivery.error_class (written out here so
that this migration does not change with the code). HTTP status, timing and the number of tries stay. E-mail tries
keep their SMTP replies (the server's, not a receiver's page). Not reversible: the texts are gone by design.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CLASSES = ("http-error", "timeout", "connection-refused", "connection-error", "tls-error", "protocol-error",
           "dns-error", "blocked-address", "subscription-deleted", "internal-error")
RULES = (("does not resolve", "dns-error"), ("may not reach", "blocked-address"), ("not sent", "blocked-address"),
         ("subscription was deleted", "subscription-deleted"), ("timeout", "timeout"), ("timed out", "timeout"),
         ("ssl", "tls-error"), ("certificate", "tls-error"), ("refused", "connection-refused"),
         ("protocol", "protocol-error"), ("connect", "connection-error"))


def _class_of(column: str) -> str:
    known = ", ".join(f"'{c}'" for c in CLASSES)
    whens = " ".join(f"WHEN position('{needle}' IN lower({column})) > 0 THEN '{cls}'" for needle, cls in RULES)
    return (f"CASE WHEN {column} IS NULL OR {column} IN ({known}) THEN {column} "
            f"WHEN lower({column}) LIKE 'http %' THEN 'http-error' {whens} ELSE 'internal-error' END")


def upgrade() -> None:
    op.execute(f"""
        UPDATE notification_attempts a SET response_excerpt = NULL, error = {_class_of('a.error')}
        FROM notification_deliveries d
        WHERE d.id = a.delivery_id AND d.channel = 'webhook'
          AND (a.response_excerpt IS NOT NULL OR a.error IS DISTINCT FROM {_class_of('a.error')})""")
    op.execute(f"""
        UPDATE notification_deliveries SET last_error = {_class_of('last_error')}
        WHERE channel = 'webhook' AND last_error IS DISTINCT FROM {_class_of('last_error')}""")


def downgrade() -> None:
    pass    # the removed texts cannot come back

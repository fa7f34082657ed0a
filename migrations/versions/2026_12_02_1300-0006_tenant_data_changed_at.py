"""tenants.data_changed_at: when the tenant's reference data last changed, kept by triggers.

Reference data: the authority directory (authorities with their organisations' names) and the imported layers
(boundaries, roads, Ortsdurchfahrten, areas: every import writes its layer_imports row). The resolution keeps the
territory, the areas and the directory in memory per this stamp, and authentication reads it with the token (with
tenants.updated_at for the rules): a resolution needs no query for any of them, and a change made any way at all
(import, admin, plain SQL) is seen by every process at its next request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WATCHED = {"authorities": ("INSERT", "UPDATE", "DELETE"), "layer_imports": ("INSERT", "UPDATE", "DELETE"),
           "organisations": ("UPDATE",)}


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN data_changed_at timestamptz NOT NULL DEFAULT now()")
    op.execute("""
        CREATE FUNCTION bump_tenant_data_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE tenants SET data_changed_at = clock_timestamp()
            WHERE key IN (SELECT DISTINCT tenant_key FROM changed_rows);
            RETURN NULL;
        END $$""")
    for table, events in WATCHED.items():
        for event in events:
            rows = "OLD" if event == "DELETE" else "NEW"
            op.execute(f"CREATE TRIGGER {table}_data_changed_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING {rows} TABLE AS changed_rows FOR EACH STATEMENT "
                       "EXECUTE FUNCTION bump_tenant_data_changed_at()")


def downgrade() -> None:
    for table, events in WATCHED.items():
        for event in events:
            op.execute(f"DROP TRIGGER {table}_data_changed_{event.lower()} ON {table}")
    op.execute("DROP FUNCTION bump_tenant_data_changed_at()")
    op.execute("ALTER TABLE tenants DROP COLUMN data_changed_at")

"""tenants.directory_changed_at: when the tenant's authority directory last changed, kept by triggers.

The resolution keeps the authority directory (authorities with their organisations' names) in memory and reads
this column with the tenant on every request: one round trip less per resolution, and a change made any way at all
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


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN directory_changed_at timestamptz NOT NULL DEFAULT now()")
    op.execute("""
        CREATE FUNCTION bump_directory_from_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE tenants SET directory_changed_at = clock_timestamp()
            WHERE key IN (SELECT tenant_key FROM changed_rows);
            RETURN NULL;
        END $$""")
    for event in ("INSERT", "UPDATE", "DELETE"):
        table = "OLD" if event == "DELETE" else "NEW"
        op.execute(f"CREATE TRIGGER authorities_directory_{event.lower()} AFTER {event} ON authorities "
                   f"REFERENCING {table} TABLE AS changed_rows FOR EACH STATEMENT "
                   "EXECUTE FUNCTION bump_directory_from_rows()")
    op.execute("CREATE TRIGGER organisations_directory_rename AFTER UPDATE ON organisations "
               "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION bump_directory_from_rows()")


def downgrade() -> None:
    op.execute("DROP TRIGGER organisations_directory_rename ON organisations")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER authorities_directory_{event} ON authorities")
    op.execute("DROP FUNCTION bump_directory_from_rows()")
    op.execute("ALTER TABLE tenants DROP COLUMN directory_changed_at")

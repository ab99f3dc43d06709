"""cards, loss reports, audit trail, staff

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("card_masked", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("audit_events_at", "audit_events", ["at"], unique=False)
    op.create_index("audit_events_card", "audit_events", ["card_masked"], unique=False)
    op.create_table(
        "cardholders",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("id_hash", sa.Text(), nullable=False),
        sa.Column("id_masked", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("id_hash"),
    )
    op.create_table(
        "handoffs",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("card_masked", sa.Text(), nullable=True),
        sa.Column("caller_number", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('agent', 'clerk', 'supervisor')", name="staff_role_check"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "cards",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("card_number", sa.Text(), nullable=False),
        sa.Column("card_digits", sa.Text(), nullable=False),
        sa.Column("holder_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("pin_hash", sa.Text(), nullable=False),
        sa.Column("pin_is_initial", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pin_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("card_digits ~ '^[0-9]+$'", name="cards_digits_check"),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name="cards_status_check"),
        sa.CheckConstraint("failed_attempts >= 0", name="cards_failed_attempts_check"),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["cardholders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("card_digits", "holder_id", name="cards_digits_holder_key"),
        sa.UniqueConstraint("card_number"),
    )
    op.create_table(
        "loss_reports",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("card_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("reported_by", sa.Text(), nullable=False),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_by", sa.Text(), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "channel IN ('ivr', 'agent', 'counter')", name="loss_reports_channel_check"
        ),
        sa.CheckConstraint("kind IN ('temporary', 'written')", name="loss_reports_kind_check"),
        sa.CheckConstraint("reference ~ '^[0-9]+$'", name="loss_reports_reference_check"),
        sa.CheckConstraint(
            "status IN ('active', 'cancelled', 'lapsed', 'replaced')",
            name="loss_reports_status_check",
        ),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["cards.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
    )
    op.create_index(
        "loss_reports_one_active",
        "loss_reports",
        ["card_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("cards_digits", "cards", ["card_digits"])
    op.execute("CREATE SEQUENCE loss_reference_seq")
    # The audit trail is append-only: the database itself refuses to change or delete it.
    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.execute("DROP SEQUENCE loss_reference_seq")
    op.drop_index("cards_digits", table_name="cards")
    op.drop_index(
        "loss_reports_one_active",
        table_name="loss_reports",
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_table("loss_reports")
    op.drop_table("cards")
    op.drop_table("staff")
    op.drop_table("handoffs")
    op.drop_table("cardholders")
    op.drop_index("audit_events_card", table_name="audit_events")
    op.drop_index("audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")

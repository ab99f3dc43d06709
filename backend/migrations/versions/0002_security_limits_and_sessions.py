"""attempt counters reserved before slow checks; console sessions and pending confirmations

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_counters",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("failures >= 0", name="attempt_counters_failures_check"),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("attempt_counters_window", "attempt_counters", ["window_started"])

    # Console: server-side sessions, pending confirmations, trusted login devices.
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf_nonce", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_seen", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("console_sessions_staff", "console_sessions", ["staff_id"])
    op.create_table(
        "console_pending",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("session_hash", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("card_number", sa.Text(), nullable=False),
        sa.Column("card_masked", sa.Text(), nullable=False),
        sa.Column("holder_hash", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"], ["console_sessions.token_hash"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("console_pending_session", "console_pending", ["session_hash"])
    op.create_index("console_pending_expires", "console_pending", ["expires_at"])
    op.create_table(
        "login_devices",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_used", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", "staff_id"),
    )
    op.create_index("login_devices_staff", "login_devices", ["staff_id"])
    # End of the console block.


def downgrade() -> None:
    # Console block.
    op.drop_table("login_devices")
    op.drop_table("console_pending")
    op.drop_table("console_sessions")
    # End of the console block.
    op.drop_table("attempt_counters")

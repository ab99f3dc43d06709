"""call outcomes for the supervisor's wallboard; indexes for its counts by time

Revision ID: 0003_call_outcomes
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_call_outcomes"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_outcomes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column(
            "ended_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("agent_reason", sa.Text(), nullable=True),
        sa.Column("seconds", sa.Numeric(10, 3), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('served', 'agent', 'hung_up', 'ended', 'failed', 'shutdown')",
            name="call_outcomes_outcome_check",
        ),
        sa.CheckConstraint("seconds >= 0", name="call_outcomes_seconds_check"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("call_outcomes_ended_at", "call_outcomes", ["ended_at"])
    # The wallboard counts loss reports by the day they were filed.
    op.create_index("loss_reports_reported_at", "loss_reports", ["reported_at"])


def downgrade() -> None:
    op.drop_index("loss_reports_reported_at", table_name="loss_reports")
    op.drop_index("call_outcomes_ended_at", table_name="call_outcomes")
    op.drop_table("call_outcomes")

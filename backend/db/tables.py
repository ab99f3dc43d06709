"""The schema, as SQLAlchemy Core tables. Changes reach a database only through Alembic."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

cardholders = Table(
    "cardholders",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    # Verification needs only a keyed hash; people see only the masked form.
    Column("id_hash", Text, nullable=False, unique=True),
    Column("id_masked", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

cards = Table(
    "cards",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("card_number", Text, nullable=False, unique=True),
    # What a caller keys: the card number without its letters.
    Column("card_digits", Text, nullable=False),
    Column("holder_id", BigInteger, ForeignKey("cardholders.id"), nullable=False),
    Column("status", Text, nullable=False, server_default="active"),
    Column("pin_hash", Text, nullable=False),
    Column("pin_is_initial", Boolean, nullable=False, server_default=text("true")),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("locked", Boolean, nullable=False, server_default=text("false")),
    Column("locked_at", DateTime(timezone=True)),
    Column("pin_changed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("card_digits", "holder_id", name="cards_digits_holder_key"),
    Index("cards_digits", "card_digits"),
    CheckConstraint("status IN ('active', 'cancelled')", name="cards_status_check"),
    CheckConstraint("failed_attempts >= 0", name="cards_failed_attempts_check"),
    CheckConstraint("card_digits ~ '^[0-9]+$'", name="cards_digits_check"),
)

loss_reports = Table(
    "loss_reports",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("card_id", BigInteger, ForeignKey("cards.id"), nullable=False),
    Column("reference", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="active"),
    Column("reported_by", Text, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A phone or agent report lapses at this moment unless a written report follows.
    Column("expires_at", DateTime(timezone=True)),
    Column("written_by", Text),
    Column("written_at", DateTime(timezone=True)),
    Column("closed_by", Text),
    Column("closed_at", DateTime(timezone=True)),
    CheckConstraint("channel IN ('ivr', 'agent', 'counter')", name="loss_reports_channel_check"),
    CheckConstraint("kind IN ('temporary', 'written')", name="loss_reports_kind_check"),
    CheckConstraint(
        "status IN ('active', 'cancelled', 'lapsed', 'replaced')", name="loss_reports_status_check"
    ),
    CheckConstraint("reference ~ '^[0-9]+$'", name="loss_reports_reference_check"),
    # At most one active report per card, decided by the database.
    Index("loss_reports_reported_at", "reported_at"),
    Index(
        "loss_reports_one_active",
        "card_id",
        unique=True,
        postgresql_where=text("status = 'active'"),
    ),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("channel", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("card_masked", Text),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("audit_events_at", "at"),
    Index("audit_events_card", "card_masked"),
)

staff = Table(
    "staff",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('agent', 'clerk', 'supervisor')", name="staff_role_check"),
)

# A call the IVR handed to the agent queue: what the agent's screen shows.
handoffs = Table(
    "handoffs",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("card_masked", Text),
    Column("caller_number", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

loss_reference_seq_name = "loss_reference_seq"

# Attempts reserved before a slow or guessable check (identity checks, logins, an agent's
# checks on one call): one row per limited thing, keyed by a keyed hash, never by what was
# typed. A reservation is one conditional upsert, so concurrency cannot pass a limit.
attempt_counters = Table(
    "attempt_counters",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("window_started", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("scope", "key"),
    CheckConstraint("failures >= 0", name="attempt_counters_failures_check"),
    Index("attempt_counters_window", "window_started"),
)

# The staff console's own state, shared by every console process through the database.
# A session: the cookie holds a random token, the row only its SHA-256, so a copy of the
# table opens nothing. Logging out, deactivating the account or changing its password
# deletes the rows; the lookup refuses idle and over-long ones.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("staff_id", BigInteger, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_nonce", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("console_sessions_staff", "staff_id"),
)

# A holder a staff member has just checked, waiting for the confirming POST: the card and the
# keyed hash of the ID number (never the number), for one session, one purpose, a few
# minutes; taken once by a conditional DELETE ... RETURNING.
console_pending = Table(
    "console_pending",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column(
        "session_hash",
        Text,
        ForeignKey("console_sessions.token_hash", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("staff_id", BigInteger, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("card_number", Text, nullable=False),
    Column("card_masked", Text, nullable=False),
    Column("holder_hash", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("console_pending_session", "session_hash"),
    Index("console_pending_expires", "expires_at"),
)

# Browsers an account has logged in from (OWASP "device cookies"): the cookie holds a random
# token, the row its SHA-256. Such a browser is not subject to the account-wide pause that
# strangers can cause, only to a limit of its own.
login_devices = Table(
    "login_devices",
    metadata,
    Column("token_hash", Text, nullable=False),
    Column("staff_id", BigInteger, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("token_hash", "staff_id"),
    Index("login_devices_staff", "staff_id"),
)

# One row per call a FastAGI server ran, written once when the call ended (ivr.callstats):
# how it ended and, when handed to an agent, why. Nothing about who called. The supervisor's
# wallboard counts these by hour and day.
call_outcomes = Table(
    "call_outcomes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    # Asterisk's id of the call; not unique here, since nothing on the call's side has to be.
    Column("call_id", Text, nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("script", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("agent_reason", Text),
    Column("seconds", Numeric(10, 3), nullable=False),
    CheckConstraint(
        "outcome IN ('served', 'agent', 'hung_up', 'ended', 'failed', 'shutdown')",
        name="call_outcomes_outcome_check",
    ),
    CheckConstraint("seconds >= 0", name="call_outcomes_seconds_check"),
    Index("call_outcomes_ended_at", "ended_at"),
)

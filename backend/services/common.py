"""What the use cases share: finding a card, its view, the audit trail, the transaction."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import structlog
from sqlalchemy import DateTime, Row, and_, insert, literal, select, update
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import idnumber, metrics
from backend.db.engine import ConnectGate, get_engine, get_gate
from backend.db.tables import audit_events, cardholders, cards, loss_reports
from backend.errors import InvalidInput, ServiceUnavailable
from backend.masking import mask_card
from backend.officehours import current_time
from backend.outcomes import Actor, CardState, CardView, LossReportView
from backend.settings import get_settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

_CARD_NUMBER = re.compile(r"[A-Z]{0,2}\d{8,9}", re.ASCII)
_CARD_DIGITS = re.compile(r"\d{8,9}", re.ASCII)


def normalise_card_number(text: str) -> str:
    number = text.strip().upper()
    if not _CARD_NUMBER.fullmatch(number):
        raise InvalidInput("card-number", "a card number is 8 or 9 digits, with letters first")
    return number


def digits_of(card_number: str) -> str:
    return "".join(ch for ch in card_number if ch.isdigit())


def check_card_digits(digits: str) -> str:
    if not _CARD_DIGITS.fullmatch(digits):
        raise InvalidInput("card-digits", "the card's digits are 8 or 9 digits")
    return digits


def check_id_number(text: str) -> str:
    try:
        return idnumber.validate(text)
    except idnumber.InvalidIdNumber as exc:
        raise InvalidInput("id-number", "the ID number is not valid (check digit)") from exc


def id_hash(number: str) -> str:
    return idnumber.keyed_hash(number, get_settings().pepper_bytes)


class IdHash(str):
    """The keyed hash of an ID number checked a moment ago, given where an ID number is
    expected (`identity.find_holder`): the console's confirmation step keeps only the hash."""


# The driver's and the pool's ways of failing. Anything else (a bug) goes on as it is.
_DATABASE_ERRORS = (DBAPIError, PendingRollbackError, SATimeoutError, OSError, TimeoutError)


def _unavailable(message: str) -> NoReturn:
    """Raise ServiceUnavailable with nothing chained to it: the driver's error, which names
    the statement, stays behind."""
    try:
        raise ServiceUnavailable(message)
    except ServiceUnavailable as exc:
        exc.__context__ = None
        raise


def _why(exc: BaseException) -> str:
    if isinstance(exc, SATimeoutError):
        return "no free connection"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return "cannot connect"
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in ("57014", "55P03"):  # statement or lock timeout
        return "no answer in time"
    if getattr(exc, "connection_invalidated", False):
        return "connection lost"
    return "database error"


async def _connect(gate: ConnectGate, probe: bool) -> AsyncConnection:
    """A pooled connection (pinged, or a new one), with the gate told how it went."""
    conn = get_engine().connect()
    try:
        await conn.start()
    except SATimeoutError:
        gate.released(probe)  # every connection busy: the database itself answers
        raise
    except Exception:
        gate.failed(probe)
        raise
    except BaseException:
        gate.released(probe)
        raise
    gate.connected(probe)
    return conn


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncConnection]:
    """One transaction: committed when the block ends, rolled back on any exception.

    The one way to the database for every use case, reads included. The whole step, pool
    checkout and connecting included, takes at most `db_step_seconds`; whatever goes wrong
    on the way (refused, down, connection killed, no free connection, statement or lock
    timeout) comes out as ServiceUnavailable, with no SQL and no values in it. While the
    database cannot be reached, steps fail at once (backend.db.engine.ConnectGate).
    """
    gate = get_gate()
    probe = gate.admit()
    if probe is None:
        metrics.DB_STEP_SECONDS.labels("refused").observe(0)
        log.info("database_step_refused", reason="unreachable, retrying shortly")
        _unavailable("the card service cannot be reached just now")
    started = time.monotonic()
    why = ""
    # Audit rows of this transaction count in the metrics once it has committed.
    audited = metrics.transaction_started()
    committed = False
    try:
        async with asyncio.timeout(get_settings().db_step_seconds):
            conn = await _connect(gate, probe)
            try:
                async with conn.begin():
                    yield conn
                committed = True
            finally:
                await conn.close()
        return
    except _DATABASE_ERRORS as exc:
        why = _why(exc)
    finally:
        metrics.transaction_ended(audited, committed=committed)
        result = "ok" if committed else "unavailable" if why else "rolled_back"
        metrics.DB_STEP_SECONDS.labels(result).observe(time.monotonic() - started)
    # Raised here, outside the handler, so that nothing is chained to it.
    seconds = round(time.monotonic() - started, 3)
    log.info("database_step_failed", reason=why, seconds=seconds)
    _unavailable(f"the card service failed: {why}")


async def best_effort(step: Awaitable[T], what: str) -> T | None:
    """A write the caller must not wait for or lose their way over (a hand-off note, a
    hang-up record): bounded like every step; if the database fails, logged and None."""
    try:
        return await step
    except ServiceUnavailable as exc:
        log.warning("not_recorded", what=what, reason=str(exc))
        return None


async def audit(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    outcome: str,
    card_masked: str | None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        insert(audit_events).values(
            channel=str(actor.channel),
            actor=actor.actor_id,
            card_masked=card_masked,
            action=action,
            outcome=outcome,
            detail=dict(detail or {}),
        )
    )
    metrics.note_audit(str(actor.channel), action, outcome)
    log.info("audit", action=action, outcome=outcome, card=card_masked, actor=str(actor))


async def audit_alone(
    actor: Actor, action: str, outcome: str, card_masked: str | None, **detail: Any
) -> None:
    async with transaction() as conn:
        await audit(conn, actor, action, outcome, card_masked, detail)


_CARD_COLUMNS = (
    cards.c.id,
    cards.c.card_number,
    cards.c.card_digits,
    cards.c.status,
    cards.c.pin_hash,
    cards.c.pin_is_initial,
    cards.c.failed_attempts,
    cards.c.locked,
    cardholders.c.name,
    cardholders.c.id_masked,
    cardholders.c.id_hash,
    loss_reports.c.reference,
    loss_reports.c.channel.label("report_channel"),
    loss_reports.c.kind.label("report_kind"),
    loss_reports.c.reported_at,
    loss_reports.c.expires_at,
)


def _card_query() -> Any:
    # A temporary report past its expiry no longer counts as active.
    active_report = and_(
        loss_reports.c.card_id == cards.c.id,
        loss_reports.c.status == "active",
        (loss_reports.c.expires_at.is_(None)) | (loss_reports.c.expires_at > dt_now_sql()),
    )
    return select(*_CARD_COLUMNS).select_from(
        cards.join(cardholders).outerjoin(loss_reports, active_report)
    )


def dt_now_sql() -> Any:
    """The application's notion of now as a bound value, so a dev or test clock override
    (settings.now_override) reaches every expiry check and timestamp alike."""
    return literal(current_time(), DateTime(timezone=True))


async def find_by_holder(conn: AsyncConnection, digits: str, holder_hash: str) -> Row[Any] | None:
    query = _card_query().where(cards.c.card_digits == digits, cardholders.c.id_hash == holder_hash)
    return (await conn.execute(query)).first()


async def find_by_number(conn: AsyncConnection, card_number: str) -> Row[Any] | None:
    return (await conn.execute(_card_query().where(cards.c.card_number == card_number))).first()


async def find_by_id(conn: AsyncConnection, card_id: int) -> Row[Any] | None:
    return (await conn.execute(_card_query().where(cards.c.id == card_id))).first()


def view(row: Row[Any]) -> CardView:
    limit = get_settings().lockout_limit
    report = None
    if row.reference is not None:
        report = LossReportView(
            reference=row.reference,
            channel=row.report_channel,
            kind=row.report_kind,
            reported_at=row.reported_at,
            expires_at=row.expires_at,
        )
    if row.status == "cancelled":
        state = CardState.CANCELLED
    elif report is not None:
        state = CardState.LOST_WRITTEN if report.kind == "written" else CardState.LOST_TEMPORARY
    elif row.locked:
        state = CardState.LOCKED
    else:
        state = CardState.ACTIVE
    return CardView(
        card_id=row.id,
        card_number=row.card_number,
        card_masked=mask_card(row.card_number),
        holder_name=row.name,
        id_masked=row.id_masked,
        state=state,
        cancelled=row.status == "cancelled",
        pin_is_initial=row.pin_is_initial,
        failed_attempts=row.failed_attempts,
        attempts_left=0 if row.locked else max(limit - row.failed_attempts, 0),
        locked=row.locked,
        active_loss_report=report,
    )


async def lapse_expired_reports(conn: AsyncConnection, card_id: int) -> None:
    """Mark a temporary report whose time ran out as lapsed, freeing the card's one slot."""
    await conn.execute(
        update(loss_reports)
        .where(
            loss_reports.c.card_id == card_id,
            loss_reports.c.status == "active",
            loss_reports.c.expires_at <= dt_now_sql(),
        )
        .values(status="lapsed", closed_at=dt_now_sql(), closed_by="expiry")
    )

"""Limits on guessing who holds a card: card and ID numbers that match nothing.

A PIN is guarded by its card's lockout (backend.services.verify). Card and ID numbers are
guarded here by windowed counters (backend.services.attempts): an identity check reserves
one attempt in every budget that applies *before* it looks the holder up, in the same
transaction as the look-up, and gives them all back when card and ID number match. So
only "no match" answers count, and no number of concurrent checks passes a budget. The
attempt that uses a budget's last try raises an alarm: an audit event and a warning log.

Budgets (limits and window in backend.settings, `identity_*`):

- By phone (IVR): per card digits keyed, and per caller number when Asterisk gives one.
  A withheld number has no budget of its own: one shared key would let a single stranger
  pause every withheld caller; the per-card budget still holds for them.
- Agents: per card digits and per caller number again, counted apart from the IVR's so
  that a card paused by phone can still be helped by an agent; per call (the console's
  `call_check_limit`, failed checks on one call); and per agent.
- Counter clerks: per clerk only. The clerk sees the holder and their ID card in person,
  so remote budgets do not apply: otherwise a stranger phoning in wrong numbers could close
  the holder's last way out (unlock, reset, replacement). The per-clerk budget and its
  alarm catch an insider probing ID numbers instead.
- The operator's command line is not limited: it runs with the database's credentials.

A stranger can pause a card's self-service by phone, but only for one window (an hour by
default) counted from the first failure, never for good; the holder can still reach an
agent in office hours or a counter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.masking import mask_card
from backend.outcomes import Actor, CardView, Channel, NoMatch, Paused, TooManyTries
from backend.services import attempts, common
from backend.services.attempts import Limit, Reservation
from backend.settings import get_settings

log = structlog.get_logger(__name__)

# A call id is unique, so its window only has to outlast the call.
CALL_WINDOW = dt.timedelta(days=1)
ALARM_ACTION = "identity-limit"


@dataclass(frozen=True)
class Budget:
    limit: Limit
    value: str
    paused: Paused


@dataclass(frozen=True)
class CallCheck:
    """An agent's check made for one call handed over by the IVR."""

    call_id: str
    limit: int  # failed checks allowed on the call
    caller_number: str | None = None


@dataclass(frozen=True)
class Held:
    """Attempts reserved for one identity check, to give back when it matches."""

    reservations: tuple[tuple[Budget, Reservation], ...]


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=get_settings().identity_window_minutes)


def call_limit(attempts_allowed: int) -> Limit:
    return Limit("identity-call", attempts_allowed, CALL_WINDOW)


def budgets(
    actor: Actor,
    card_digits: str,
    *,
    caller_number: str | None = None,
    call: CallCheck | None = None,
) -> list[Budget]:
    """The budgets an identity check by `actor` draws on, in the one order every check
    takes them (so concurrent checks lock counter rows in the same order)."""
    s = get_settings()
    window = _window()
    found: list[Budget] = []
    if actor.channel is Channel.AGENT and call is not None:
        found.append(Budget(call_limit(call.limit), call.call_id, Paused.CALL))
        caller_number = caller_number or call.caller_number
    if actor.channel in (Channel.IVR, Channel.AGENT):
        remote = str(actor.channel)
        card = Limit(f"identity-card-{remote}", s.identity_card_limit, window)
        found.append(Budget(card, card_digits, Paused.CARD))
        if caller_number:
            caller = Limit(f"identity-caller-{remote}", s.identity_caller_limit, window)
            found.append(Budget(caller, caller_number, Paused.CALLER))
    if actor.channel in (Channel.AGENT, Channel.COUNTER):
        staff = Limit("identity-staff", s.identity_staff_limit, window)
        found.append(Budget(staff, actor.actor_id, Paused.STAFF))
    return found


async def reserve(
    conn: AsyncConnection,
    wanted: Sequence[Budget],
    actor: Actor,
    action: str,
    card_masked: str,
) -> Held | TooManyTries:
    """Reserve one attempt in each budget, or none at all: a full budget refuses the check
    (audited) and what was reserved before it is undone with the savepoint."""
    taken: list[tuple[Budget, Reservation]] = []
    savepoint = await conn.begin_nested()
    for budget in wanted:
        reservation = await attempts.reserve(conn, budget.limit, budget.value)
        if reservation is None:
            await savepoint.rollback()
            await common.audit(
                conn, actor, action, "too-many-tries", card_masked, {"paused": budget.paused}
            )
            return TooManyTries(budget.paused)
        taken.append((budget, reservation))
    await savepoint.commit()
    return Held(tuple(taken))


async def give_back(conn: AsyncConnection, held: Held) -> None:
    """Card and ID number matched: none of the reserved attempts counts."""
    for _budget, reservation in held.reservations:
        await attempts.give_back(conn, reservation)


async def count_failure(conn: AsyncConnection, held: Held, actor: Actor, card_masked: str) -> None:
    """The check matched nothing: the attempts stay counted; a budget this attempt filled
    raises the alarm (once per window)."""
    for budget, reservation in held.reservations:
        if reservation.reached_limit:
            detail = {
                "paused": budget.paused,
                "attempts": budget.limit.attempts,
                "window_minutes": int(budget.limit.window.total_seconds() // 60),
            }
            await common.audit(conn, actor, ALARM_ACTION, "limit-reached", card_masked, detail)
            log.warning(
                "identity_limit_reached",
                paused=str(budget.paused),
                scope=budget.limit.scope,
                card=card_masked,
                actor=str(actor),
            )


async def call_failures(call_id: str, attempts_allowed: int) -> int:
    """Failed checks counted on this call (what the agent's screen shows)."""
    async with common.transaction() as conn:
        return await attempts.failures(conn, call_limit(attempts_allowed), call_id)


async def find_holder(
    conn: AsyncConnection,
    card_number: str,
    id_number: str,
    actor: Actor,
    action: str,
    *,
    name: str | None = None,
    call: CallCheck | None = None,
) -> CardView | NoMatch | TooManyTries:
    """The card with this number when the ID number (and name, if given) is its holder's,
    for staff who see the full card number. Budgets are reserved first and given back on a
    match; a mismatch is audited "no-match". `id_number` may be the `IdHash` of one checked
    a moment ago. Malformed input raises InvalidInput before anything is counted."""
    number = common.normalise_card_number(card_number)
    if isinstance(id_number, common.IdHash):
        holder_hash = str(id_number)
    else:
        holder_hash = common.id_hash(common.check_id_number(id_number))
    masked = mask_card(number)
    wanted = budgets(actor, common.digits_of(number), call=call)
    held = await reserve(conn, wanted, actor, action, masked)
    if isinstance(held, TooManyTries):
        return held
    row = await common.find_by_number(conn, number)
    if row is None or row.id_hash != holder_hash or (name is not None and row.name != name.strip()):
        await common.audit(conn, actor, action, "no-match", masked)
        await count_failure(conn, held, actor, masked)
        return NoMatch()
    await give_back(conn, held)
    return common.view(row)

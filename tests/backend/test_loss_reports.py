"""Loss reports: self-service, agent and written reports, expiry, cancelling, replacement."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db.engine import get_engine
from backend.masking import mask_card
from backend.officehours import add_working_days
from backend.outcomes import (
    Actor,
    CardState,
    Channel,
    Done,
    InitialPinRefused,
    Locked,
    LossReported,
    NoMatch,
    NotUsable,
    Proven,
    Refused,
)
from backend.services import common
from backend.services.cards import card_status
from backend.services.counter import cancel_loss_report, issue_replacement
from backend.services.report_loss import (
    make_reference,
    report_loss_by_staff,
    report_loss_self_service,
)
from backend.services.verify import prove_holder, verify_pin
from tests.backend.by_phone import change_by_phone, report_by_phone
from tests.conftest import IssuedCard, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _actor(channel: Channel = Channel.IVR) -> Actor:
    return Actor(channel, f"{channel}-{uuid.uuid4().hex[:12]}")


async def rows(sql: str, **params: Any) -> list[Any]:
    """All rows of a query on the test database."""
    async with get_engine().connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def reports_of(card: IssuedCard) -> list[Any]:
    """The card's loss_reports rows, oldest first."""
    return await rows(
        "SELECT r.* FROM loss_reports r JOIN cards c ON c.id = r.card_id"
        " WHERE c.card_number = :n ORDER BY r.id",
        n=card.card_number,
    )


def luhn_valid(number: str) -> bool:
    """The standard Luhn test over the whole number, check digit included."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def expected_expiry(reference: str, working_days: int = 5) -> dt.datetime:
    """Midnight in Shanghai after the Nth working day from the reference's date."""
    day = dt.datetime.strptime(reference[:6], "%y%m%d").date()
    last = add_working_days(day, working_days)
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)


async def _enabled(issue: Issue) -> IssuedCard:
    return await issue(pin=make_pin())


def _wrong_pin(card: IssuedCard) -> str:
    while True:
        pin = make_pin()
        if pin != card.pin:
            return pin


def test_reference_shape_and_check_digit() -> None:
    """References are the date, a five-digit serial and a Luhn check digit."""
    ref = make_reference(dt.date(2026, 9, 15), 17)
    assert ref[:11] == "26091500017"
    assert len(ref) == 12 and ref.isdigit() and luhn_valid(ref)
    assert make_reference(dt.date(2026, 9, 15), 100_017) == ref
    for serial in range(200):
        assert luhn_valid(make_reference(dt.date(2026, 1, 2), serial))
    broken = ref[:-1] + str((int(ref[-1]) + 1) % 10)
    assert not luhn_valid(broken)


async def test_self_service_report(issue: Issue) -> None:
    """An enabled PIN files a temporary phone report expiring after five working days."""
    card = await _enabled(issue)
    outcome = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(outcome, LossReported)
    assert len(outcome.reference) == 12 and outcome.reference.isdigit()
    assert luhn_valid(outcome.reference)
    today = dt.datetime.now(SHANGHAI).date()
    assert outcome.reference[:6] in {f"{today:%y%m%d}", f"{today - dt.timedelta(days=1):%y%m%d}"}
    assert (outcome.channel, outcome.kind, outcome.already_reported) == ("ivr", "temporary", False)
    assert outcome.expires_at == expected_expiry(outcome.reference)
    view = await card_status(card.card_number)
    assert view.state is CardState.LOST_TEMPORARY
    assert view.active_loss_report is not None
    assert view.active_loss_report.reference == outcome.reference
    (row,) = await reports_of(card)
    assert (row.status, row.channel, row.kind) == ("active", "ivr", "temporary")


async def test_initial_pin_cannot_report_by_phone(issue: Issue) -> None:
    """A card still on 123456 is sent to an agent; no report row is made."""
    card = await issue()
    outcome = await report_by_phone(card.digits, card.id_number, "123456", _actor())
    assert outcome == InitialPinRefused()
    assert await reports_of(card) == []
    assert (await card_status(card.card_number)).state is CardState.ACTIVE


async def test_reporting_again_returns_the_same_reference(issue: Issue) -> None:
    """A second report finds the first: same reference, already_reported, still one row."""
    card = await _enabled(issue)
    first = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    again = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(first, LossReported) and isinstance(again, LossReported)
    assert again.reference == first.reference
    assert again.already_reported and not first.already_reported
    assert len(await reports_of(card)) == 1


async def test_self_service_report_needs_the_right_pin(issue: Issue) -> None:
    """A wrong PIN files nothing and counts; a locked card cannot report by phone."""
    card = await _enabled(issue)
    wrong = _wrong_pin(card)
    for _ in range(6):
        outcome = await report_by_phone(card.digits, card.id_number, wrong, _actor())
        assert not isinstance(outcome, LossReported)
    assert await report_by_phone(card.digits, card.id_number, card.pin, _actor()) == Locked()
    assert await reports_of(card) == []


async def test_concurrent_reports_make_one(issue: Issue) -> None:
    """Fifty simultaneous phone reports on one proof leave exactly one active report, all
    with its reference."""
    card = await _enabled(issue)
    caller = _actor()
    proof = await prove_holder(card.digits, card.id_number, card.pin, caller, "report-loss")
    assert isinstance(proof, Proven)
    outcomes = await asyncio.gather(*(report_loss_self_service(proof, caller) for _ in range(50)))
    assert all(isinstance(o, LossReported) for o in outcomes)
    reported = [o for o in outcomes if isinstance(o, LossReported)]
    assert len({o.reference for o in reported}) == 1
    assert sum(not o.already_reported for o in reported) == 1
    active = await rows(
        "SELECT count(*) FROM loss_reports r JOIN cards c ON c.id = r.card_id"
        " WHERE c.card_number = :n AND r.status = 'active'",
        n=card.card_number,
    )
    assert active[0][0] == 1
    assert len(await reports_of(card)) == 1


async def test_agent_report_for_an_initial_pin_card(issue: Issue) -> None:
    """An agent, having checked the ID, reports for a card still on its initial PIN."""
    card = await issue()
    agent = _actor(Channel.AGENT)
    outcome = await report_loss_by_staff(card.card_number, card.id_number, agent)
    assert isinstance(outcome, LossReported)
    assert (outcome.channel, outcome.kind, outcome.already_reported) == (
        "agent",
        "temporary",
        False,
    )
    assert outcome.expires_at == expected_expiry(outcome.reference)
    (row,) = await reports_of(card)
    assert row.reported_by == str(agent)


async def test_agent_report_for_a_locked_card(issue: Issue) -> None:
    """A locked card can still be reported lost by an agent."""
    card = await _enabled(issue)
    for _ in range(6):
        await verify_pin(card.digits, card.id_number, _wrong_pin(card), _actor())
    assert (await card_status(card.card_number)).locked
    outcome = await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
    assert isinstance(outcome, LossReported) and not outcome.already_reported


async def test_agent_report_with_the_wrong_id_is_no_match(issue: Issue) -> None:
    """The agent's report needs the holder's own ID number."""
    card = await issue()
    other = await issue()
    agent = _actor(Channel.AGENT)
    assert await report_loss_by_staff(card.card_number, other.id_number, agent) == NoMatch()
    assert await reports_of(card) == []


async def test_agent_report_after_a_phone_report_finds_it(issue: Issue) -> None:
    """An agent report on a card already reported by phone returns the phone report."""
    card = await _enabled(issue)
    phone = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    agent = await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
    assert isinstance(phone, LossReported) and isinstance(agent, LossReported)
    assert (agent.reference, agent.channel, agent.already_reported) == (
        phone.reference,
        "ivr",
        True,
    )


async def test_written_report_upgrades_the_temporary_one(issue: Issue) -> None:
    """A counter's written report keeps the temporary report's reference and ends its expiry."""
    card = await _enabled(issue)
    phone = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    clerk = _actor(Channel.COUNTER)
    written = await report_loss_by_staff(card.card_number, card.id_number, clerk, written=True)
    assert isinstance(phone, LossReported) and isinstance(written, LossReported)
    assert written.reference == phone.reference
    assert (written.kind, written.expires_at, written.already_reported) == ("written", None, False)
    (row,) = await reports_of(card)
    assert (row.kind, row.status, row.expires_at) == ("written", "active", None)
    assert row.written_by == str(clerk) and row.written_at is not None
    view = await card_status(card.card_number)
    assert view.state is CardState.LOST_WRITTEN
    again = await report_loss_by_staff(card.card_number, card.id_number, clerk, written=True)
    assert isinstance(again, LossReported)
    assert (again.reference, again.already_reported) == (phone.reference, True)


async def test_written_report_without_a_prior_one(issue: Issue) -> None:
    """A written report at the counter needs no earlier report and never expires."""
    card = await issue()
    clerk = _actor(Channel.COUNTER)
    outcome = await report_loss_by_staff(card.card_number, card.id_number, clerk, written=True)
    assert isinstance(outcome, LossReported)
    assert (outcome.channel, outcome.kind, outcome.expires_at) == ("counter", "written", None)
    assert luhn_valid(outcome.reference)
    (row,) = await reports_of(card)
    assert row.written_by == str(clerk)


async def _expire(reference: str) -> None:
    async with get_engine().begin() as conn:
        await conn.execute(
            text(
                "UPDATE loss_reports SET expires_at = now() - interval '1 minute'"
                " WHERE reference = :r"
            ),
            {"r": reference},
        )


async def test_an_expired_temporary_report_lapses(issue: Issue) -> None:
    """Past its expiry a temporary report no longer counts; a new report can be filed."""
    card = await _enabled(issue)
    first = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(first, LossReported)
    await _expire(first.reference)
    view = await card_status(card.card_number)
    assert view.active_loss_report is None
    assert view.state is CardState.ACTIVE
    second = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(second, LossReported)
    assert second.reference != first.reference
    assert not second.already_reported
    old, new = await reports_of(card)
    assert (old.reference, old.status, old.closed_by) == (first.reference, "lapsed", "expiry")
    assert (new.reference, new.status) == (second.reference, "active")


async def test_an_expired_report_is_not_upgraded_to_written(issue: Issue) -> None:
    """A written report after the temporary one lapsed is a new report with a new reference."""
    card = await issue()
    agent = await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
    assert isinstance(agent, LossReported)
    await _expire(agent.reference)
    written = await report_loss_by_staff(
        card.card_number, card.id_number, _actor(Channel.COUNTER), written=True
    )
    assert isinstance(written, LossReported)
    assert written.reference != agent.reference
    assert [r.status for r in await reports_of(card)] == ["lapsed", "active"]


async def test_an_expired_report_cannot_be_cancelled(issue: Issue) -> None:
    """Cancelling finds no active report once the temporary one has lapsed."""
    card = await issue()
    agent = await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
    assert isinstance(agent, LossReported)
    await _expire(agent.reference)
    clerk = _actor(Channel.COUNTER)
    assert await cancel_loss_report(card.card_number, card.id_number, clerk) == Refused(
        "no-active-report"
    )
    assert [r.status for r in await reports_of(card)] == ["lapsed"]


async def test_cancel_an_active_report(issue: Issue) -> None:
    """A clerk cancels the active report; the card is usable again; a second cancel is refused."""
    card = await _enabled(issue)
    phone = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(phone, LossReported)
    clerk = _actor(Channel.COUNTER)
    done = await cancel_loss_report(card.card_number, card.id_number, clerk)
    assert isinstance(done, Done)
    assert done.card.state is CardState.ACTIVE and done.card.active_loss_report is None
    (row,) = await reports_of(card)
    assert (row.status, row.closed_by) == ("cancelled", str(clerk))
    assert await cancel_loss_report(card.card_number, card.id_number, clerk) == Refused(
        "no-active-report"
    )
    again = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(again, LossReported) and again.reference != phone.reference


async def test_cancel_with_the_wrong_id_is_no_match(issue: Issue) -> None:
    """Cancelling needs the holder's ID; otherwise NoMatch and the report stays."""
    card = await issue()
    other = await issue()
    await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
    clerk = _actor(Channel.COUNTER)
    assert await cancel_loss_report(card.card_number, other.id_number, clerk) == NoMatch()
    assert [r.status for r in await reports_of(card)] == ["active"]


async def test_replacement_closes_the_report_and_cancels_the_card(issue: Issue) -> None:
    """After a replacement the report is replaced, cannot be cancelled, and the card is dead."""
    card = await _enabled(issue)
    await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    clerk = _actor(Channel.COUNTER)
    done = await issue_replacement(card.card_number, card.id_number, clerk)
    assert isinstance(done, Done)
    assert done.card.cancelled and done.card.state is CardState.CANCELLED
    (row,) = await reports_of(card)
    assert (row.status, row.closed_by) == ("replaced", str(clerk))
    assert await cancel_loss_report(card.card_number, card.id_number, clerk) == Refused(
        "no-active-report"
    )
    assert await issue_replacement(card.card_number, card.id_number, clerk) == Refused(
        "no-active-report"
    )
    assert await verify_pin(card.digits, card.id_number, card.pin, _actor()) == NotUsable()
    assert await report_by_phone(card.digits, card.id_number, card.pin, _actor()) == NotUsable()
    assert (
        await report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
        == NotUsable()
    )
    assert (
        await change_by_phone(card.digits, card.id_number, card.pin, make_pin(), _actor())
        == NotUsable()
    )
    assert len(await reports_of(card)) == 1


async def test_a_replacement_racing_staff_reports(issue: Issue) -> None:
    """A replacement issued while agents file reports for the same card: no error, the
    card ends cancelled with its one report replaced, and every agent was told either the
    existing reference or that the card is no longer usable; no report on a dead card."""
    card = await _enabled(issue)
    first = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(first, LossReported)
    clerk = _actor(Channel.COUNTER)
    agents = [
        report_loss_by_staff(card.card_number, card.id_number, _actor(Channel.AGENT))
        for _ in range(15)
    ]
    done, *answers = await asyncio.gather(
        issue_replacement(card.card_number, card.id_number, clerk), *agents
    )
    assert isinstance(done, Done) and done.card.cancelled
    for answer in answers:
        assert answer == NotUsable() or (
            isinstance(answer, LossReported) and answer.reference == first.reference
        )
    assert [(r.reference, r.status) for r in await reports_of(card)] == [
        (first.reference, "replaced")
    ]


async def test_replacement_needs_an_active_report(issue: Issue) -> None:
    """Without an active report no replacement is issued and the card stays active."""
    card = await issue()
    clerk = _actor(Channel.COUNTER)
    assert await issue_replacement(card.card_number, card.id_number, clerk) == Refused(
        "no-active-report"
    )
    assert (await card_status(card.card_number)).state is CardState.ACTIVE


def _failing_audit(
    real: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """audit() that fails right after a report has been inserted."""

    async def audit(
        conn: AsyncConnection,
        actor: Actor,
        action: str,
        outcome: str,
        card_masked: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        if outcome == "reported":
            raise RuntimeError("the audit trail is down")
        await real(conn, actor, action, outcome, card_masked, detail)

    return audit


async def _audit_rows(actor: Actor) -> list[Any]:
    return await rows("SELECT * FROM audit_events WHERE actor = :a", a=actor.actor_id)


async def test_a_failed_self_service_report_leaves_no_trace(
    issue: Issue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the insert rolls back the report and its audit row together; the
    proof before it is a step of its own (its audit row, the count reset) and stays."""
    card = await _enabled(issue)
    for _ in range(2):
        await verify_pin(card.digits, card.id_number, _wrong_pin(card), _actor())
    monkeypatch.setattr(common, "audit", _failing_audit(common.audit))
    caller = _actor()
    with pytest.raises(RuntimeError):
        await report_by_phone(card.digits, card.id_number, card.pin, caller)
    monkeypatch.undo()
    assert await reports_of(card) == []
    assert [(r.action, r.outcome) for r in await _audit_rows(caller)] == [("report-loss", "proven")]
    view = await card_status(card.card_number)
    assert view.active_loss_report is None and view.state is CardState.ACTIVE
    assert view.failed_attempts == 0
    later = await report_by_phone(card.digits, card.id_number, card.pin, _actor())
    assert isinstance(later, LossReported) and not later.already_reported


async def test_a_failed_staff_report_leaves_no_trace(
    issue: Issue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same holds for an agent's report: no report row, no audit row."""
    card = await issue()
    monkeypatch.setattr(common, "audit", _failing_audit(common.audit))
    agent = _actor(Channel.AGENT)
    with pytest.raises(RuntimeError):
        await report_loss_by_staff(card.card_number, card.id_number, agent)
    monkeypatch.undo()
    assert await reports_of(card) == []
    assert await _audit_rows(agent) == []
    assert (await card_status(card.card_number)).active_loss_report is None


async def test_reports_are_audited_with_their_reference(issue: Issue) -> None:
    """Filing a report writes one audit row with the masked card and the reference, after
    the proof's own row."""
    card = await _enabled(issue)
    caller = _actor()
    outcome = await report_by_phone(card.digits, card.id_number, card.pin, caller)
    assert isinstance(outcome, LossReported)
    proven, row = await _audit_rows(caller)
    assert (proven.action, proven.outcome) == ("report-loss", "proven")
    assert (row.channel, row.action, row.outcome) == ("ivr", "report-loss", "reported")
    assert row.card_masked == mask_card(card.card_number)
    assert row.detail == {"reference": outcome.reference}

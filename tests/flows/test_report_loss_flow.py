"""Self-service loss report by phone, and the agent hand-off for initial-PIN cards."""

from __future__ import annotations

from typing import Any

from ivr.contract import NEXT_AGENT, VAR_AGENT_REASON, VAR_CALL_ID, VAR_CARD_MASKED, VAR_NEXT
from prompts.catalogue import PROMPTS
from tests.conftest import make_pin
from tests.flows.conftest import EVENING, MAKE_UP_SUNDAY, NATIONAL_DAY, OPEN, Phone
from tests.flows.helpers import id_keys, reports


def loss_keys(card: Any, pin: str) -> list[str]:
    return [f"{card.digits}#", f"{pin}#", id_keys(card.id_number)]


def spoken_digits(heard: list[str], start: int, count: int) -> str:
    return "".join(p.removeprefix("digit-") for p in heard[start : start + count])


async def test_report_confirmed_and_repeated(phone: Phone, issue: Any) -> None:
    """Card, PIN, ID; 1 confirms (the prompt says the card stops working); the reference
    read digit by digit with the written report still to make; 9 repeats it; then the
    caller is told how to go on or end."""
    pin = make_pin()
    card = await issue(pin=pin)
    t = await phone.call("main", ["1", *loss_keys(card, pin), "1", "9", "-", "-"])
    heard = t.heard
    assert [p for p, _ in t.keys][1:5] == [
        "enter-card-number",
        "enter-pin",
        "enter-id-number",
        "loss-confirm",
    ]
    assert heard[-3:] == ["loss-reference-repeat", "after-service", "goodbye"]
    assert "loss-written-next" in heard
    stored = await reports(card.card_number)
    assert len(stored) == 1 and stored[0].channel == "ivr" and stored[0].status == "active"
    reference = stored[0].reference
    first = heard.index("loss-reported") + 1
    assert spoken_digits(heard, first, 12) == reference
    again = heard.index("loss-reference-repeat") + 1
    assert spoken_digits(heard, again, 12) == reference
    assert "digit-1" in heard  # Mandarin "yao", from the digit prompts


def reference_as_read(events: list[tuple[str, str]], after: str) -> list[str]:
    """What follows prompt `after` up to the next prompt other than a digit (keys skipped):
    digit groups joined, "|" for each pause."""
    start = events.index(("prompt", after)) + 1
    read: list[str] = [""]
    for kind, value in events[start:]:
        if kind == "keys":
            continue  # the 9 keyed at the repeat offer
        if kind == "pause":
            read.append("|")
            read.append("")
        elif kind == "prompt" and value.startswith("digit-"):
            read[-1] += value.removeprefix("digit-")
        else:
            break
    return read


async def test_reference_is_noted_first_then_read_in_groups_with_pauses(
    phone: Phone, issue: Any
) -> None:
    """ "Please note" comes before the reference, which is read 4-4-4 with a pause between
    groups, then the repeat offer; 9 reads it again the same way."""
    pin = make_pin()
    card = await issue(pin=pin)
    t = await phone.call("report-loss", [*loss_keys(card, pin), "1", "9", "-"])
    (stored,) = await reports(card.card_number)
    ref = stored.reference
    grouped = [ref[:4], "|", ref[4:8], "|", ref[8:]]
    assert reference_as_read(t.events, "loss-reported") == grouped
    assert reference_as_read(t.events, "loss-reference-repeat") == grouped
    at = t.heard.index("loss-reported")
    assert t.heard[at + 13 : at + 15] == ["loss-written-next", "loss-reference-repeat"]
    assert "请记下" in PROMPTS["loss-reported"]
    assert "请记下" in PROMPTS["loss-already-reported"]
    assert "请记下" not in PROMPTS["loss-reference-repeat"]


async def test_star_cancels_the_report(phone: Phone, issue: Any) -> None:
    """`*` at the confirmation: told it is cancelled, and no report exists."""
    pin = make_pin()
    card = await issue(pin=pin)
    t = await phone.call("report-loss", [*loss_keys(card, pin), "*"])
    assert "loss-cancelled" in t.heard
    assert await reports(card.card_number) == []


async def test_second_report_gets_existing_reference(phone: Phone, issue: Any) -> None:
    """A card already reported: the caller hears the existing reference, no second report."""
    pin = make_pin()
    card = await issue(pin=pin)
    await phone.call("report-loss", [*loss_keys(card, pin), "1", "-"])
    t = await phone.call("report-loss", [*loss_keys(card, pin), "1", "-"])
    stored = await reports(card.card_number)
    assert len(stored) == 1
    at = t.heard.index("loss-already-reported") + 1
    assert spoken_digits(t.heard, at, 12) == stored[0].reference


async def test_wrong_pin_reports_nothing(phone: Phone, issue: Any) -> None:
    """A wrong PIN: attempts left are told, nothing is reported."""
    card = await issue(pin=make_pin())
    t = await phone.call("report-loss", [*loss_keys(card, make_pin()), "1"])
    assert "wrong-pin" in t.heard
    assert await reports(card.card_number) == []


async def test_initial_pin_in_office_hours_offers_agent(
    phone: Phone, issue: Any, clock: Any
) -> None:
    """Initial PIN in office hours: told why as soon as the PIN is proven (no confirmation
    asked first), with the choices; 0 reaches the agent queue with screen data."""
    clock(OPEN)
    card = await issue()
    t = await phone.call("report-loss", [*loss_keys(card, "123456"), "0"])
    at = t.heard.index("enter-id-number")
    assert t.heard[at + 1 : at + 3] == ["loss-initial-pin-refused", "loss-initial-pin-choices"]
    assert "loss-confirm" not in t.heard
    assert t.heard[-1] == "agent-transfer"
    assert t.variables[VAR_NEXT] == NEXT_AGENT
    assert t.variables[VAR_AGENT_REASON] == "initial-pin-loss-report"
    assert t.variables[VAR_CARD_MASKED].endswith(card.digits[-4:])
    assert card.digits not in t.variables[VAR_CARD_MASKED]
    assert t.variables[VAR_CALL_ID]
    assert t.ended == "agi-returned"
    assert await reports(card.card_number) == []
    from backend.services.handoffs import find_handoff

    handoff = await find_handoff(t.variables[VAR_CALL_ID])
    assert handoff is not None


async def test_initial_pin_out_of_hours_hears_hours(phone: Phone, issue: Any, clock: Any) -> None:
    """Initial PIN at night: told why, and the choices without an agent (changing the PIN
    now, an agent in office hours, a counter); * ends the direct script with goodbye."""
    clock(EVENING)
    card = await issue()
    t = await phone.call("report-loss", [*loss_keys(card, "123456"), "*"])
    assert t.heard[-3:] == [
        "loss-initial-pin-refused",
        "loss-initial-pin-choices-closed",
        "goodbye",
    ]
    assert "工作时间" in PROMPTS["loss-initial-pin-choices-closed"]
    assert "网点" in PROMPTS["loss-initial-pin-choices-closed"]
    assert VAR_NEXT in t.variables and t.variables[VAR_NEXT] != NEXT_AGENT


async def test_public_holiday_is_out_of_hours(phone: Phone, issue: Any, clock: Any) -> None:
    """National Day at 10:00 on a Thursday: agents are off."""
    clock(NATIONAL_DAY)
    card = await issue()
    t = await phone.call("report-loss", [*loss_keys(card, "123456"), "!"])
    assert "loss-initial-pin-choices-closed" in t.heard
    assert "loss-initial-pin-choices" not in t.heard


async def test_make_up_workday_is_in_hours(phone: Phone, issue: Any, clock: Any) -> None:
    """A Sunday worked in exchange for the National Day break: agents answer."""
    clock(MAKE_UP_SUNDAY)
    card = await issue()
    t = await phone.call("report-loss", [*loss_keys(card, "123456"), "0"])
    assert "loss-initial-pin-choices" in t.heard
    assert t.variables[VAR_NEXT] == NEXT_AGENT


async def test_initial_pin_can_be_changed_at_once_then_the_loss_reported(
    phone: Phone, issue: Any, clock: Any
) -> None:
    """Initial PIN at night: 2 sets a PIN of the holder's own with the proof just given (no
    second card, PIN and ID), and a self-service report then goes through with it."""
    clock(EVENING)
    card = await issue()
    new = make_pin()
    keys = [*loss_keys(card, "123456"), "2", f"{new}#", f"{new}#", "!"]
    t = await phone.call("main", ["1", *keys])
    assert [p for p, _ in t.keys][4:7] == [
        "loss-initial-pin-choices-closed",
        "enter-new-pin-rules",
        "enter-new-pin-again",
    ]
    assert "pin-changed" in t.heard
    assert await reports(card.card_number) == []
    await phone.call("report-loss", [*loss_keys(card, new), "1", "-"])
    assert len(await reports(card.card_number)) == 1

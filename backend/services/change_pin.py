"""Changing a card's PIN: old PIN and ID proven, the new PIN checked against the rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import idnumber, pinrules, secrethash
from backend.masking import mask_card
from backend.outcomes import Actor, ChangePinOutcome, PinChanged, PinRejected
from backend.services import common
from backend.services.verify import check_pin


def new_pin_problem(
    new_pin: str, *, old_pin: str, id_number: str, card_digits: str
) -> pinrules.PinRule | None:
    """The rule the new PIN breaks, for a caller who has given card, ID and old PIN.

    The card's digits stand for its number: letters never end a six-digit PIN anyway."""
    holder = idnumber.normalise(id_number)
    return pinrules.broken_rule(
        new_pin,
        old_pin=old_pin,
        birth_date=idnumber.birth_date(holder),
        id_number=holder,
        card_number=card_digits,
    )


async def change_pin(
    card_digits: str, id_number: str, old_pin: str, new_pin: str, actor: Actor
) -> ChangePinOutcome:
    rule = new_pin_problem(new_pin, old_pin=old_pin, id_number=id_number, card_digits=card_digits)
    if rule is not None:
        await common.audit_alone(actor, "change-pin", "rule-" + rule, mask_card(card_digits))
        return PinRejected(rule)
    new_hash = await secrethash.hash_pin(new_pin)

    async def changed(conn: AsyncConnection, row: Row[Any]) -> ChangePinOutcome:
        await common.audit(conn, actor, "change-pin", "changed", mask_card(row.card_number))
        return PinChanged(mask_card(row.card_number))

    # The new hash is applied by the same conditional UPDATE that proves the old PIN.
    result: ChangePinOutcome = await check_pin(
        card_digits,
        id_number,
        old_pin,
        actor,
        "change-pin",
        changed,
        success_values={
            "pin_hash": new_hash,
            "pin_is_initial": False,
            "pin_changed_at": common.dt_now_sql(),
        },
    )
    return result

"""Issuing cards and looking them up, for operators and staff."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from backend import idnumber, pinrules, secrethash
from backend.db.tables import cardholders, cards
from backend.errors import DuplicateCard, InvalidInput, UnknownCard
from backend.masking import mask_card, mask_id
from backend.outcomes import Actor, CardView, NoMatch, TooManyTries, Verified
from backend.services import common, identity
from backend.services.identity import CallCheck


async def issue_card(
    card_number: str, id_number: str, name: str, actor: Actor, *, pin: str | None = None
) -> CardView:
    """A new card starts on the initial PIN; a given PIN counts as enabled and obeys the rules."""
    number = common.normalise_card_number(card_number)
    holder = common.check_id_number(id_number)
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput("name", "the holder's name is required (at most 64 characters)")
    if pin is not None:
        rule = pinrules.broken_rule(
            pin,
            birth_date=idnumber.birth_date(holder),
            id_number=holder,
            card_number=common.digits_of(number),
        )
        if rule is not None:
            raise InvalidInput("pin-" + rule, f"the PIN breaks the rule: {rule}")
    pin_hash = await secrethash.hash_pin(pin if pin is not None else pinrules.INITIAL_PIN)
    holder_hash = common.id_hash(holder)
    async with common.transaction() as conn:
        await conn.execute(
            insert(cardholders)
            .values(name=name, id_hash=holder_hash, id_masked=mask_id(holder))
            .on_conflict_do_nothing(index_elements=["id_hash"])
        )
        holder_row = (
            await conn.execute(
                select(cardholders.c.id, cardholders.c.name).where(
                    cardholders.c.id_hash == holder_hash
                )
            )
        ).one()
        if holder_row.name != name:
            # Raising rolls the transaction back: nothing changes.
            raise InvalidInput("name", "this ID number is registered under another name")
        holder_id = holder_row.id
        card_id = (
            await conn.execute(
                insert(cards)
                .values(
                    card_number=number,
                    card_digits=common.digits_of(number),
                    holder_id=holder_id,
                    pin_hash=pin_hash,
                    pin_is_initial=pin is None,
                )
                .on_conflict_do_nothing()
                .returning(cards.c.id)
            )
        ).scalar_one_or_none()
        if card_id is None:
            # Raising rolls back the holder row too: nothing changes.
            raise DuplicateCard(f"card {mask_card(number)} exists already")
        await common.audit(conn, actor, "issue-card", "issued", mask_card(number))
        row = await common.find_by_id(conn, card_id)
    assert row is not None
    return common.view(row)


async def card_status(card_number: str) -> CardView:
    number = common.normalise_card_number(card_number)
    async with common.transaction() as conn:
        row = await common.find_by_number(conn, number)
    if row is None:
        raise UnknownCard(f"no card {mask_card(number)}")
    return common.view(row)


async def check_holder(
    card_number: str,
    name: str,
    id_number: str,
    actor: Actor,
    *,
    call: CallCheck | None = None,
) -> Verified | NoMatch | TooManyTries:
    """An agent or clerk checks card, name and ID before a service. Attempts are reserved
    first (backend.services.identity: per call and per card for agents, per staff member
    for both), so no burst of checks passes a limit."""
    async with common.transaction() as conn:
        card = await identity.find_holder(
            conn, card_number, id_number, actor, "check-holder", name=name, call=call
        )
        if not isinstance(card, CardView):
            return card
        await common.audit(conn, actor, "check-holder", "ok", card.card_masked)
        return Verified(card)

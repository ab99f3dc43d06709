"""Changing a card's PIN once card, holder and old PIN are proven (backend.services.verify).

A change costs two argon2 operations: the old PIN checked once by `prove_holder`, the new
one hashed once here. Not one: the new PIN needs a hash of its own with a fresh salt, and
nothing computed while checking the old PIN can serve for it. The proof is not checked
again either: the change applies only to the card as it was proven (same PIN hash, still
active, not locked), in one conditional UPDATE.
"""

from __future__ import annotations

from backend import idnumber, pinrules, secrethash
from backend.db.tables import cards
from backend.masking import mask_card
from backend.outcomes import Actor, ChangePinOutcome, PinChanged, PinRejected, Proven, Stale
from backend.services import common
from backend.services.verify import claim_proven, proof_is_fresh, proof_refusal

ACTION = "change-pin"


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
    proof: Proven, new_pin: str, actor: Actor, *, old_pin: str, id_number: str
) -> ChangePinOutcome:
    """Give the proven card `new_pin`. `old_pin` and `id_number` are what the holder keyed
    for the proof; the rules need them (same as old, birth date, ID suffix)."""
    masked = proof.card.card_masked
    if not proof_is_fresh(proof, actor) or common.id_hash(id_number) != proof.id_hash:
        await common.audit_alone(actor, ACTION, "proof-stale", masked)
        return Stale()
    rule = new_pin_problem(
        new_pin,
        old_pin=old_pin,
        id_number=id_number,
        card_digits=common.digits_of(proof.card.card_number),
    )
    if rule is not None:
        await common.audit_alone(actor, ACTION, "rule-" + rule, masked)
        return PinRejected(rule)
    new_hash = await secrethash.hash_pin(new_pin)
    async with common.transaction() as conn:
        changed = (
            await conn.execute(
                claim_proven(proof)
                .values(
                    pin_hash=new_hash,
                    pin_is_initial=False,
                    pin_changed_at=common.dt_now_sql(),
                )
                .returning(cards.c.card_number)
            )
        ).first()
        if changed is not None:
            await common.audit(conn, actor, ACTION, "changed", mask_card(changed.card_number))
            return PinChanged(mask_card(changed.card_number))
        outcome, said = await proof_refusal(conn, proof)
        await common.audit(conn, actor, ACTION, said, masked)
        return outcome

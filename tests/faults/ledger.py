"""The rows a fault could leave half-written, read before and after it.

Every state change of the card service is one transaction that also writes its audit
row, so a change without its audit row (or an audit row without its change) is a
half-written step: a PIN changed without "change-pin changed", a loss report without
"report-loss reported", a hand-off note without its "handoff" row, and the reverse.

A PIN guess reserved before its check and never settled (the database went away between
the two transactions of `prove_holder`) stays counted on purpose, without an outcome in
the audit trail; it is counted apart (`guesses_left_counted`), not as half-written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card


@dataclass(frozen=True)
class Snapshot:
    pins: dict[str, str]  # card number -> PIN hash
    attempts: dict[str, int]  # card number -> failed_attempts
    reports: set[str]  # loss report references
    handoffs: set[str]  # call ids
    audit: list[Any]  # (id, action, outcome, card_masked, reference, call_id)


async def snapshot() -> Snapshot:
    async with get_engine().connect() as conn:
        cards = (
            await conn.execute(text("SELECT card_number, pin_hash, failed_attempts FROM cards"))
        ).all()
        reports = (await conn.execute(text("SELECT reference FROM loss_reports"))).scalars()
        handoffs = (await conn.execute(text("SELECT call_id FROM handoffs"))).scalars()
        audit = (
            await conn.execute(
                text(
                    "SELECT id, action, outcome, card_masked, detail->>'reference' AS reference,"
                    " detail->>'call_id' AS call_id FROM audit_events ORDER BY id"
                )
            )
        ).all()
    return Snapshot(
        pins={row.card_number: row.pin_hash for row in cards},
        attempts={row.card_number: row.failed_attempts for row in cards},
        reports=set(reports),
        handoffs=set(handoffs),
        audit=list(audit),
    )


@dataclass(frozen=True)
class Changes:
    half_written: list[str]
    guesses_left_counted: int
    pins_changed: int
    reports_filed: int
    handoffs_noted: int


async def reported_cards() -> set[str]:
    """Card numbers with an active loss report, as the writable database has them."""
    async with get_engine().connect() as conn:
        query = text(
            "SELECT c.card_number FROM loss_reports r JOIN cards c ON c.id = r.card_id"
            " WHERE r.status = 'active'"
        )
        return set((await conn.execute(query)).scalars())


def compare(before: Snapshot, after: Snapshot) -> Changes:
    """Each change between the snapshots against the audit rows written meanwhile."""
    last = before.audit[-1].id if before.audit else 0
    new = [row for row in after.audit if row.id > last]
    problems: list[str] = []

    changed = {n for n, h in after.pins.items() if n in before.pins and before.pins[n] != h}
    audited = [r.card_masked for r in new if (r.action, r.outcome) == ("change-pin", "changed")]
    masks = {mask_card(n) for n in changed}
    problems += [f"PIN of {m} changed without its audit row" for m in masks if m not in audited]
    problems += [
        f"audit says {m} changed its PIN, the card did not" for m in audited if m not in masks
    ]

    filed = after.reports - before.reports
    reported = {r.reference for r in new if r.action == "report-loss" and r.outcome == "reported"}
    problems += [f"loss report {ref} without its audit row" for ref in filed - reported]
    problems += [f"audit row for loss report {ref}, no report" for ref in reported - filed]

    noted = after.handoffs - before.handoffs
    handed = {r.call_id for r in new if r.action == "handoff"}
    problems += [f"hand-off {call} without its audit row" for call in noted - handed]
    problems += [f"audit row for hand-off {call}, no note" for call in handed - noted]

    wrong = Counter(r.card_masked for r in new if r.outcome in ("wrong-pin", "wrong-pin-locked"))
    counted = sum(
        max(after.attempts.get(n, 0) - before.attempts.get(n, 0) - wrong[mask_card(n)], 0)
        for n in before.attempts
    )
    return Changes(problems, counted, len(changed), len(filed), len(noted))

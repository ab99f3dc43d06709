"""What the use cases answer: typed outcomes a caller, agent or clerk can be told in words.

Wrong card, wrong ID and unknown card are one and the same `NoMatch`, so an answer never
tells a stranger which part was right.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from backend.pinrules import PinRule


class Channel(StrEnum):
    IVR = "ivr"
    AGENT = "agent"
    COUNTER = "counter"
    OPERATOR = "operator"  # the command line


@dataclass(frozen=True)
class Actor:
    """Who acts: the channel and a call id or staff id."""

    channel: Channel
    actor_id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.actor_id}"


class CardState(StrEnum):
    ACTIVE = "active"
    LOST_TEMPORARY = "lost-temporary"
    LOST_WRITTEN = "lost-written"
    LOCKED = "locked"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class LossReportView:
    reference: str
    channel: str
    kind: str
    reported_at: dt.datetime
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class CardView:
    card_id: int
    card_number: str
    card_masked: str
    holder_name: str
    id_masked: str
    state: CardState
    cancelled: bool
    pin_is_initial: bool
    failed_attempts: int
    attempts_left: int
    locked: bool
    active_loss_report: LossReportView | None


# Verification -----------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    card: CardView


@dataclass(frozen=True)
class NoMatch:
    """Unknown card, or card and ID number that do not belong together."""


@dataclass(frozen=True)
class WrongPin:
    attempts_left: int


@dataclass(frozen=True)
class Locked:
    """Too many wrong PINs: only a counter clerk can unlock the card."""


@dataclass(frozen=True)
class NotUsable:
    """The card is cancelled (replaced)."""


class Paused(StrEnum):
    """Which budget of identity checks ran out (see backend.services.identity)."""

    CARD = "card"  # wrong card/ID numbers keyed for this card lately
    CALLER = "caller"  # wrong card/ID numbers from this caller number lately
    CALL = "call"  # the agent's failed checks on this call
    STAFF = "staff"  # this staff member's failed checks lately


@dataclass(frozen=True)
class TooManyTries:
    """Too many card/ID numbers that matched nothing: checks are paused for a while and
    nothing was looked up."""

    paused: Paused


@dataclass(frozen=True)
class Proven:
    """Card, holder and PIN proven together by `actor` at `proven_at`.

    Carries what a use case needs to apply its change only to the card as it was proven:
    the PIN hash the PIN was checked against and the holder's keyed ID hash; never the PIN.
    """

    card: CardView
    actor: Actor
    proven_at: dt.datetime
    pin_hash: str = field(repr=False)
    id_hash: str = field(repr=False)

    @property
    def card_id(self) -> int:
        return self.card.card_id


@dataclass(frozen=True)
class Stale:
    """The proof expired, belongs to someone else, or the card's PIN changed since it was
    given: nothing was changed; prove again."""


ProveOutcome = Proven | NoMatch | WrongPin | Locked | NotUsable | TooManyTries
VerifyOutcome = Verified | NoMatch | WrongPin | Locked | NotUsable | TooManyTries


# Changing the PIN ----------------------------------------------------------------


@dataclass(frozen=True)
class PinChanged:
    card_masked: str


@dataclass(frozen=True)
class PinRejected:
    rule: PinRule


ChangePinOutcome = PinChanged | PinRejected | Locked | NotUsable | Stale


# Loss reports ---------------------------------------------------------------------


@dataclass(frozen=True)
class LossReported:
    reference: str
    channel: str
    kind: str
    expires_at: dt.datetime | None
    already_reported: bool  # an earlier active report; its reference is returned


@dataclass(frozen=True)
class InitialPinRefused:
    """Self-service needs an enabled PIN; the caller goes to an agent or a counter."""


ReportLossOutcome = LossReported | InitialPinRefused | Locked | NotUsable | Stale


# Counter services -------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    card: CardView


@dataclass(frozen=True)
class Refused:
    """The card is not in a state where this can be done; `reason` is a code to put in words."""

    reason: str


CounterOutcome = Done | Refused | NoMatch | TooManyTries

"""Demo cards for a local run, listed in the README. Never used outside dev."""

from __future__ import annotations

from dataclasses import dataclass

from backend.errors import DuplicateCard
from backend.outcomes import Actor, Channel
from backend.services.cards import issue_card


@dataclass(frozen=True)
class DemoCard:
    card_number: str
    id_number: str
    name: str
    pin: str | None  # None: still on the initial PIN 123456


DEMO_CARDS = (
    DemoCard("A10000001", "11010519491231002X", "张三", None),
    DemoCard("A10000002", "310104198705120011", "李四", "246810"),
    DemoCard("B10000003", "440305199002030045", "王五", "135790"),
)


async def issue_demo_cards() -> list[str]:
    """Issue the demo cards that do not exist yet; returns the numbers issued now."""
    issued = []
    for card in DEMO_CARDS:
        try:
            await issue_card(
                card.card_number,
                card.id_number,
                card.name,
                Actor(Channel.OPERATOR, "demo"),
                pin=card.pin,
            )
        except DuplicateCard:
            continue
        issued.append(card.card_number)
    return issued


# Demo staff for the console in a local run (dev only; listed in the README).
DEMO_STAFF = (
    ("agent1", "坐席小陈", "agent", "agent-demo-2026"),
    ("clerk1", "柜员小李", "clerk", "clerk-demo-2026"),
    ("super1", "主管老王", "supervisor", "super-demo-2026"),
)


async def ensure_demo_staff() -> list[str]:
    from backend.services.staff import DuplicateUsername, create_staff
    from backend.settings import get_settings

    if get_settings().env == "prod":
        raise RuntimeError("demo staff accounts are for local runs only")
    created = []
    for username, name, role, password in DEMO_STAFF:
        try:
            await create_staff(username, name, role, password, Actor(Channel.OPERATOR, "demo"))
        except DuplicateUsername:
            continue
        created.append(username)
    return created

"""The welcome and the menus: 2 card services, 0 an agent, 9 repeat; within card services
1 report a lost card, 2 change the PIN, 3 hear the card's status, 0 agent, * back, 9 repeat.
"""

from __future__ import annotations

from ivr.caller import AgentRequested
from ivr.contract import REASON_CALLER_ASKED, SCRIPT_MAIN
from ivr.flows import agent
from ivr.flows.card_status import card_status_flow
from ivr.flows.change_pin import change_pin_flow
from ivr.flows.common import Call
from ivr.flows.report_loss import report_loss_flow
from ivr.flows.script import as_script
from ivr.registry import register

# Keys of the menus (the defaults follow the hotline's published instructions).
MAIN_CARD_SERVICES = "2"
CARD_REPORT_LOSS, CARD_CHANGE_PIN, CARD_STATUS, BACK = "1", "2", "3", "*"
# 9 (repeat) simply offers the menu again; 0 is an agent at every menu.

SERVICES = {
    CARD_REPORT_LOSS: report_loss_flow,
    CARD_CHANGE_PIN: change_pin_flow,
    CARD_STATUS: card_status_flow,
}


def choose(call: Call, menu: str, choices: str) -> str | None:
    """The key the caller picks at `menu`. 0 hands over to an agent; when agents are off
    duty the caller has heard the hours and gets None, so the menu is offered again."""
    call.at(menu)
    try:
        return call.caller.menu(menu, choices)
    except AgentRequested:
        agent.hand_over(call, REASON_CALLER_ASKED)
        return None


def card_services(call: Call) -> None:
    """Returns when the caller goes back to the main menu."""
    while True:
        key = choose(call, "card-menu", "1230*9")
        if key == BACK:
            return
        if key in SERVICES:
            SERVICES[key](call)


@register(SCRIPT_MAIN)
@as_script
def main(call: Call) -> None:
    """Welcome, then the main menu until the caller is served or hangs up."""
    call.caller.play("welcome")
    while True:
        if choose(call, "main-menu", "209") == MAIN_CARD_SERVICES:
            card_services(call)

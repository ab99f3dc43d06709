"""The welcome and the card menu: 1 report a lost card, 2 change the PIN, 3 hear the
card's status, 0 an agent. A key cuts the welcome and the menu short, and every service
comes back here with a word."""

from __future__ import annotations

from ivr.caller import AgentRequested
from ivr.contract import REASON_CALLER_ASKED
from ivr.flows import agent
from ivr.flows.card_status import card_status_flow
from ivr.flows.change_pin import change_pin_flow
from ivr.flows.common import Call, Served
from ivr.flows.report_loss import report_loss_flow
from ivr.flows.script import Service, run_service
from prompts.catalogue import Prompt

CARD_REPORT_LOSS, CARD_CHANGE_PIN, CARD_STATUS, AGENT = "1", "2", "3", "0"
SERVICES: dict[str, Service] = {
    CARD_REPORT_LOSS: report_loss_flow,
    CARD_CHANGE_PIN: change_pin_flow,
    CARD_STATUS: card_status_flow,
}
ANOTHER_SERVICE = "*"
# After a service, how long the caller has to press * for another before the goodbye.
ANOTHER_SERVICE_WAIT_MS = 4000


def choose(call: Call, menu: Prompt, choices: str, intro: Prompt | None = None) -> str | None:
    """The key the caller picks at `menu`. 0 hands over to an agent; when agents are off
    duty the caller has heard the hours and gets None, so the menu is offered again."""
    call.at(menu)
    try:
        return call.caller.menu(menu, choices, intro=intro)
    except AgentRequested:
        agent.hand_over(call, REASON_CALLER_ASKED)
        return None


def main(call: Call) -> None:
    """Welcome, then the card menu until the caller is served or hangs up."""
    intro: Prompt | None = Prompt.WELCOME
    while True:
        key = choose(call, Prompt.CARD_MENU, "".join(SERVICES) + AGENT, intro)
        intro = None
        if key not in SERVICES:
            continue
        if run_service(call, SERVICES[key]) is Served.NOT_DONE:
            call.caller.play(Prompt.BACK_TO_MENU)
            continue
        wait = ANOTHER_SERVICE_WAIT_MS
        if call.caller.choose_after(Prompt.AFTER_SERVICE, ANOTHER_SERVICE, timeout_ms=wait) is None:
            call.goodbye()

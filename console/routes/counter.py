"""The counter clerk's screens: check the holder, confirm, then do the service.

Every service is two POSTs: the check shows a confirmation page, and only the confirming
POST (with its own one-time token) changes the card.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from backend.errors import InvalidInput
from backend.outcomes import (
    Actor,
    CounterOutcome,
    Done,
    LossReported,
    NoMatch,
    NotUsable,
    Refused,
    TooManyTries,
    Verified,
)
from backend.services import counter as services
from backend.services.cards import card_status, check_holder
from backend.services.report_loss import report_loss_by_staff
from backend.services.staff import Role, StaffView
from console import messages, pending
from console.auth import require
from console.templating import render

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/counter")
Clerk = Annotated[StaffView, Depends(require(Role.CLERK))]

Service = Callable[[str, str, Actor], Awaitable[CounterOutcome]]
SERVICES: dict[str, Service] = {
    "cancel-loss-report": services.cancel_loss_report,
    "unlock": services.unlock,
    "reset-pin": services.reset_pin,
    "issue-replacement": services.issue_replacement,
}
ACTIONS = list(messages.COUNTER_ACTIONS)
DONE_NOTES = {
    "cancel-loss-report": "挂失已解除，该卡恢复正常使用。",
    "unlock": "已解锁，持卡人可用原密码办理业务。",
    "reset-pin": "密码已重置为初始密码。请提醒持卡人尽快通过电话或柜台修改密码。",
    "issue-replacement": "原卡已注销，请按规定办理新卡制卡。",
}


# The clerk's own budget of failed holder checks ran out (backend.services.identity).
CLERK_PAUSED = "您近期核验不一致次数过多，已暂停核验并通知主管。请稍后再试。"


def _form(request: Request, status_code: int = 200, **context: object) -> Response:
    return render(
        request, "counter/form.html", {"actions": messages.COUNTER_ACTIONS, **context}, status_code
    )


@router.get("")
async def form(request: Request, _clerk: Clerk) -> Response:
    return _form(request)


@router.post("/check")
async def check(
    request: Request,
    clerk: Clerk,
    action: Annotated[str, Form()] = "",
    card_number: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    id_number: Annotated[str, Form()] = "",
) -> Response:
    typed = {"action": action, "card_number": card_number.strip(), "name": name.strip()}
    if action not in ACTIONS:
        return _form(request, 400, error="请选择要办理的业务。", typed=typed)
    try:
        outcome = await check_holder(card_number, name, id_number, clerk.actor)
    except InvalidInput as exc:
        return _form(request, 400, error=messages.invalid_input(exc), typed=typed)
    if isinstance(outcome, TooManyTries):
        return _form(request, 429, error=CLERK_PAUSED, typed=typed)
    if not isinstance(outcome, Verified):
        return _form(request, 200, error=messages.NO_MATCH, typed=typed)
    card = outcome.card
    token = await pending.put(
        request, f"counter:{action}", card.card_number, id_number, card.card_masked
    )
    context = {"card": card, "action": action, "action_name": messages.COUNTER_ACTIONS[action]}
    return render(request, "counter/confirm.html", {**context, "token": token})


@router.post("/confirm")
async def confirm(
    request: Request,
    clerk: Clerk,
    action: Annotated[str, Form()] = "",
    token: Annotated[str, Form()] = "",
) -> Response:
    purpose = f"counter:{action}"
    held = await pending.take(request, token, purpose) if action in ACTIONS else None
    if held is None:
        return _form(request, 409, error=messages.EXPIRED)
    action_name = messages.COUNTER_ACTIONS[action]
    if action == "written-loss-report":
        reported = await report_loss_by_staff(
            held.card_number, held.holder_hash, clerk.actor, written=True
        )
        if isinstance(reported, TooManyTries):
            return _form(request, 429, error=CLERK_PAUSED)
        if isinstance(reported, NoMatch):
            return _form(request, 200, error=messages.NO_MATCH)
        if isinstance(reported, NotUsable):
            return _form(request, 200, error=messages.NOT_USABLE)
        assert isinstance(reported, LossReported)
        card = await card_status(held.card_number)
        note = "该卡原已办理书面挂失，受理编号不变。" if reported.already_reported else ""
        context = {"card": card, "action_name": action_name, "report": reported, "note": note}
        return render(request, "counter/done.html", context)
    outcome = await SERVICES[action](held.card_number, held.holder_hash, clerk.actor)
    if isinstance(outcome, TooManyTries):
        return _form(request, 429, error=CLERK_PAUSED)
    if isinstance(outcome, NoMatch):
        return _form(request, 200, error=messages.NO_MATCH)
    if isinstance(outcome, Refused):
        error = messages.REFUSALS.get(outcome.reason, "该卡当前状态不能办理此业务。")
        return _form(request, 200, error=error)
    assert isinstance(outcome, Done)
    log.info("counter_done", action=action, card=held.card_masked)
    context = {"card": outcome.card, "action_name": action_name, "note": DONE_NOTES[action]}
    return render(request, "counter/done.html", context)

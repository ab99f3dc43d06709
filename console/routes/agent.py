"""The agent's screens: calls handed over by the IVR, the holder check, the loss report."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from backend.errors import InvalidInput
from backend.outcomes import LossReported, NoMatch, NotUsable, Paused, TooManyTries, Verified
from backend.services.cards import check_holder
from backend.services.handoffs import (
    CALL_CHECK,
    CALL_CHECK_FAILED,
    HandoffView,
    audit_call,
    find_handoff,
    recent_handoffs,
)
from backend.services.identity import CallCheck, call_failures
from backend.services.report_loss import report_loss_by_staff
from backend.services.staff import Role, StaffView
from console import messages, pending
from console.auth import require
from console.config import get_console_settings
from console.templating import render

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/agent")
Agent = Annotated[StaffView, Depends(require(Role.AGENT))]

NOT_FOUND = "没有找到这个来电编号的转接记录，请核对来电编号。"
# Checks paused by a limit (the call's own also closes the form).
PAUSED = {
    Paused.CALL: "本次来电核验失败次数已达上限，不能继续核验。",
    Paused.CARD: "该卡近期核验不一致次数过多，已暂停电话核验。请告知来电人稍后再试或到柜台办理。",
    Paused.CALLER: "该来电号码近期核验不一致次数过多，已暂停核验。请告知来电人到柜台办理。",
    Paused.STAFF: "您近期核验不一致次数过多，已暂停核验并通知主管。请稍后再试。",
}


def _purpose(call_id: str) -> str:
    return f"call:{call_id}"


async def _call(call_id: str) -> HandoffView | None:
    try:
        return await find_handoff(call_id)
    except InvalidInput:
        return None


async def _call_page(
    request: Request, call: HandoffView, status_code: int = 200, **context: object
) -> Response:
    limit = get_console_settings().call_check_limit
    failed = await call_failures(call.call_id, limit)
    values = {"call": call, "failed": failed, "limit": limit, "blocked": failed >= limit}
    return render(request, "agent/call.html", {**values, **context}, status_code)


@router.get("")
async def calls(request: Request, _agent: Agent) -> Response:
    return render(request, "agent/calls.html", {"calls": await recent_handoffs(20)})


@router.get("/lookup")
async def lookup(
    request: Request, _agent: Agent, call_id: Annotated[str, Query()] = ""
) -> Response:
    call = await _call(call_id)
    if call is None:
        context = {"calls": await recent_handoffs(20), "error": NOT_FOUND, "call_id": call_id}
        return render(request, "agent/calls.html", context, 404)
    return RedirectResponse(f"/agent/calls/{quote(call.call_id, safe='')}", status_code=303)


@router.get("/calls/{call_id}")
async def call_page(request: Request, call_id: str, _agent: Agent) -> Response:
    call = await _call(call_id)
    if call is None:
        context = {"calls": await recent_handoffs(20), "error": NOT_FOUND}
        return render(request, "agent/calls.html", context, 404)
    return await _call_page(request, call)


@router.post("/calls/{call_id}/check")
async def check(
    request: Request,
    call_id: str,
    agent: Agent,
    card_number: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    id_number: Annotated[str, Form()] = "",
) -> Response:
    call = await _call(call_id)
    if call is None:
        return render(request, "agent/calls.html", {"calls": [], "error": NOT_FOUND}, 404)
    typed = {"card_number": card_number.strip(), "name": name.strip()}
    # The call's try is reserved before the check (and given back when it matches), so no
    # number of simultaneous requests runs more than `limit` failing checks on one call.
    limit = get_console_settings().call_check_limit
    on_call = CallCheck(call.call_id, limit, call.caller_number)
    try:
        outcome = await check_holder(card_number, name, id_number, agent.actor, call=on_call)
    except InvalidInput as exc:
        # A typing slip checks nothing, so it does not count against the caller.
        log.info("call_check_invalid", code=exc.code, call_id=call.call_id)
        error = messages.invalid_input(exc)
        return await _call_page(request, call, 400, error=error, typed=typed)
    if isinstance(outcome, TooManyTries):
        await audit_call(agent.actor, CALL_CHECK, "refused-limit", None, call.call_id)
        if outcome.paused is Paused.CALL:
            return await _call_page(request, call, 403)
        return await _call_page(request, call, 429, error=PAUSED[outcome.paused], typed=typed)
    if isinstance(outcome, NoMatch):
        await audit_call(agent.actor, CALL_CHECK, CALL_CHECK_FAILED, None, call.call_id)
        return await _call_page(request, call, 200, error=messages.NO_MATCH, typed=typed)
    assert isinstance(outcome, Verified)
    card = outcome.card
    await audit_call(agent.actor, CALL_CHECK, "ok", card.card_masked, call.call_id)
    token = await pending.put(
        request, _purpose(call.call_id), card.card_number, id_number, card.card_masked
    )
    return await _call_page(request, call, 200, verified=card, token=token)


@router.post("/calls/{call_id}/report")
async def report(
    request: Request, call_id: str, agent: Agent, token: Annotated[str, Form()] = ""
) -> Response:
    call = await _call(call_id)
    if call is None:
        return render(request, "agent/calls.html", {"calls": [], "error": NOT_FOUND}, 404)
    held = await pending.take(request, token, _purpose(call.call_id))
    if held is None:
        return await _call_page(request, call, 409, error=messages.EXPIRED)
    outcome = await report_loss_by_staff(held.card_number, held.holder_hash, agent.actor)
    if isinstance(outcome, TooManyTries):
        await audit_call(agent.actor, "call-report-loss", "refused-limit", None, call.call_id)
        return await _call_page(request, call, 429, error=PAUSED[outcome.paused])
    if isinstance(outcome, NoMatch | NotUsable):
        result = "no-match" if isinstance(outcome, NoMatch) else "not-usable"
        await audit_call(agent.actor, "call-report-loss", result, held.card_masked, call.call_id)
        error = messages.NO_MATCH if isinstance(outcome, NoMatch) else messages.NOT_USABLE
        return await _call_page(request, call, 200, error=error)
    assert isinstance(outcome, LossReported)
    await audit_call(
        agent.actor,
        "call-report-loss",
        "existing" if outcome.already_reported else "reported",
        held.card_masked,
        call.call_id,
        reference=outcome.reference,
    )
    context = {"call": call, "report": outcome, "card_masked": held.card_masked}
    return render(request, "agent/reported.html", context)

"""The supervisor's wallboard: today's calls by hour and outcome, the share served without
an agent, hand-offs by reason, lockouts and loss reports by channel, the agent queue now;
or the same over past days. Charts are SVG drawn here (console.charts); today's page
reloads itself every REFRESH_SECONDS."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from backend.errors import InvalidInput
from backend.officehours import current_time
from backend.services import wallboard as board
from backend.services.staff import Role, StaffView
from backend.settings import get_settings
from console import charts, messages
from console.auth import require
from console.config import get_console_settings
from console.queue import queue_figures
from console.templating import render

router = APIRouter(prefix="/supervisor")
Supervisor = Annotated[StaffView, Depends(require(Role.SUPERVISOR))]

REFRESH_SECONDS = 15
# Drawing order of the outcomes, bottom up.
OUTCOMES = ("served", "agent", "hung_up", "ended", "failed", "shutdown")


def _today() -> dt.date:
    from zoneinfo import ZoneInfo

    return current_time().astimezone(ZoneInfo(get_settings().timezone)).date()


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        raise InvalidInput("span", "not a date") from None


def _rows(counts: dict[str, int], words: dict[str, str]) -> list[tuple[str, str, int]]:
    ordered = [k for k in words if k in counts] + sorted(k for k in counts if k not in words)
    return [(key, words.get(key, key), counts[key]) for key in ordered]


def _charts(found: board.Wallboard) -> dict[str, Any]:
    words = messages.CALL_OUTCOMES
    series = [(key, words[key]) for key in OUTCOMES]
    unit = "时" if found.span.by_hour else ""
    parts = [(key, words[key], found.outcome_total(key)) for key in OUTCOMES]
    return {
        "calls_chart": charts.stacked_columns(
            "来电按" + ("小时" if found.span.by_hour else "日期") + "及结果",
            found.span.buckets(),
            series,
            found.calls,
            unit,
        ),
        "share_chart": charts.share_bar("来电结果占比", parts),
        "handoff_chart": charts.bars(
            "转人工原因",
            [
                ("agent", label, n)
                for _, label, n in _rows(found.handoffs, messages.HANDOFF_REASONS)
            ],
        ),
        "lockout_chart": charts.bars(
            "密码锁定（按渠道）",
            [("locked", label, n) for _, label, n in _rows(found.lockouts, messages.CHANNELS)],
        ),
        "loss_chart": charts.bars(
            "挂失登记（按渠道）",
            [
                (f"ch-{key}", label, n)
                for key, label, n in _rows(found.loss_reports, messages.CHANNELS)
            ],
        ),
        "parts": parts,
    }


@router.get("/wallboard")
async def wallboard(
    request: Request,
    _supervisor: Supervisor,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    today = _today()
    status = 200
    error = None
    try:
        first = _day(since) or today
        shown = board.span(first, _day(until) or (first if since else today))
    except InvalidInput as exc:
        error, status = messages.invalid_input(exc), 400
        shown = board.span(today)
    found = await board.wallboard(shown)
    live = shown.last >= today >= shown.first
    share = found.served_share
    context = {
        "title": "实时看板" if live and shown.by_hour else "看板",
        "error": error,
        "board": found,
        "since": shown.first.isoformat(),
        "until": shown.last.isoformat(),
        "live": live,
        "refresh": REFRESH_SECONDS if live else None,
        "share": None if share is None else round(share * 100),
        "queue": await queue_figures(get_console_settings().asterisk_instance) if live else None,
        "outcome_words": messages.CALL_OUTCOMES,
        "outcomes": OUTCOMES,
        "updated": current_time(),
        **_charts(found),
    }
    return render(request, "supervisor/wallboard.html", context, status)

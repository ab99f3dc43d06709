"""Numbers and clock times written the way a Mandarin speaker says them.

Template prompts put numbers in Chinese characters rather than Arabic digits: a voice
talent reads either correctly, but the placeholder synthesiser says "2个" as "二个" and
"2点" as "二点", where Mandarin wants "两".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

_DIGITS = "零一二三四五六七八九"

# Read out one key at a time (card and reference numbers): 1 is "幺" so it is not
# mistaken for 7 on a poor line.
DIGIT_BY_DIGIT = "零幺二三四五六七八九"

# Hotline and phone numbers are read digit by digit; five digits is the shortest (12333).
_LONG_NUMBER = re.compile(r"\d{5,}")


def cardinal(n: int) -> str:
    """0-99 as a plain number: 2 -> 二, 12 -> 十二, 30 -> 三十."""
    if not 0 <= n <= 99:
        raise ValueError(f"{n} is outside 0-99")
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _DIGITS[ones]
    head = "十" if tens == 1 else _DIGITS[tens] + "十"
    return head if ones == 0 else head + _DIGITS[ones]


def quantity(n: int) -> str:
    """A number before a measure word: 2 alone is 两 (两次, 两个工作日)."""
    return "两" if n == 2 else cardinal(n)


def day_period(t: dt.time) -> str:
    if t.hour < 6:
        return "凌晨"
    if t.hour < 12:
        return "上午"
    if t.hour == 12:
        return "中午"
    if t.hour < 18:
        return "下午"
    return "晚上"


def clock(t: dt.time) -> str:
    """The time without its part of day, on a 12-hour dial: 13:30 -> 一点三十分."""
    hour = t.hour % 12 or 12
    text = quantity(hour) + "点"
    if t.minute:
        text += ("零" if t.minute < 10 else "") + cardinal(t.minute) + "分"
    return text


def time_range(start: dt.time, end: dt.time) -> str:
    """上午九点至十二点 / 上午九点至下午五点: the end's part of day only when it differs."""
    # A session ending at 12:00 or 18:00 is a morning or an afternoon one, so the end
    # takes the part of day of the minute before it.
    minutes = end.hour * 60 + end.minute - 1
    before_end = dt.time(max(minutes, 0) // 60, max(minutes, 0) % 60)
    first, last = day_period(start), day_period(before_end)
    return f"{first}{clock(start)}至{'' if last == first else last}{clock(end)}"


def sessions_text(sessions: Iterable[tuple[dt.time, dt.time]]) -> str:
    return "、".join(time_range(start, end) for start, end in sessions)


def digit_by_digit(number: str) -> str:
    return "".join(DIGIT_BY_DIGIT[int(ch)] for ch in number)


def for_synthesis(text: str) -> str:
    """The catalogue text as the synthesiser should say it: long numbers key by key."""
    return _LONG_NUMBER.sub(lambda m: digit_by_digit(m.group()), text)

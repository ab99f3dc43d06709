"""Every Mandarin prompt the IVR plays, by typed id.

`Prompt` names each whole prompt; a mistyped member fails mypy, and a test checks that
every member has a text and is played somewhere. `Piece` is a word the IVR strings
together to read a number out (a digit, the letter X, "N times"); pieces are made only by
`digits_of` and `count`, so no flow spells a sound name by hand.

The id is also the sound file's name inside Asterisk's `sounds/zh/ivr12333/`. Most texts
are fixed; a few are rendered from the settings (office hours, card length, how long a
phone loss report lasts) so that what callers hear stays true to the configuration.

Wording is terse on purpose: every second of a prompt is a second of every call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Literal, NewType, get_args

from backend.settings import Settings, get_settings
from ivr.contract import SOUNDS_SUBDIR
from prompts.spoken import DIGIT_BY_DIGIT, cardinal, quantity, sessions_text

# Counts cover every "tries left" a lockout limit of up to 20 allows.
MAX_COUNT = 20


class Prompt(StrEnum):
    # The welcome and the card menu; a key cuts each of them short.
    WELCOME = "welcome"
    CARD_MENU = "card-menu"
    BACK_TO_MENU = "back-to-menu"
    AFTER_SERVICE = "after-service"
    # Keys that were not what the IVR asked for.
    INVALID_KEY = "invalid-key"
    NO_INPUT = "no-input"
    TRIES_LEFT = "tries-left"
    TIMES = "times"
    TOO_MANY_TRIES = "too-many-tries"
    GOODBYE = "goodbye"
    # The dialplan's one apology when self-service cannot reach the card service.
    SERVICE_UNAVAILABLE = "service-unavailable"
    # Entries.
    ENTER_CARD_NUMBER = "enter-card-number"
    CARD_NUMBER_WRONG_LENGTH = "card-number-wrong-length"
    ENTER_PIN = "enter-pin"
    ENTER_PIN_AGAIN = "enter-pin-again"
    ENTER_ID_NUMBER = "enter-id-number"
    ID_NUMBER_INVALID = "id-number-invalid"
    ENTER_NEW_PIN_RULES = "enter-new-pin-rules"
    ENTER_NEW_PIN = "enter-new-pin"
    ENTER_NEW_PIN_AGAIN = "enter-new-pin-again"
    NEW_PINS_DIFFER = "new-pins-differ"
    # Why a new PIN is refused, one per backend.pinrules.PinRule.
    PIN_RULE_LENGTH = "pin-rule-length"
    PIN_RULE_INITIAL = "pin-rule-initial"
    PIN_RULE_REPEATED = "pin-rule-repeated"
    PIN_RULE_SEQUENCE = "pin-rule-sequence"
    PIN_RULE_NEAR_SEQUENCE = "pin-rule-near-sequence"
    PIN_RULE_KEYPAD = "pin-rule-keypad"
    PIN_RULE_COMMON = "pin-rule-common"
    PIN_RULE_SAME_AS_OLD = "pin-rule-same-as-old"
    PIN_RULE_BIRTH_DATE = "pin-rule-birth-date"
    PIN_RULE_ID_SUFFIX = "pin-rule-id-suffix"
    PIN_RULE_CARD_SUFFIX = "pin-rule-card-suffix"
    # Checks of card, ID and PIN, and their outcomes.
    PIN_CHANGED = "pin-changed"
    WRONG_PIN = "wrong-pin"
    WRONG_PIN_LOCKS = "wrong-pin-locks"
    CARD_LOCKED = "card-locked"
    NO_MATCH = "no-match"
    CARD_NOT_USABLE = "card-not-usable"
    IDENTITY_PAUSED = "identity-paused"
    START_AGAIN = "start-again"
    # Loss reports.
    LOSS_CONFIRM = "loss-confirm"
    LOSS_CANCELLED = "loss-cancelled"
    LOSS_REPORTED = "loss-reported"
    LOSS_ALREADY_REPORTED = "loss-already-reported"
    LOSS_REFERENCE_REPEAT = "loss-reference-repeat"
    LOSS_WRITTEN_NEXT = "loss-written-next"
    LOSS_INITIAL_PIN_REFUSED = "loss-initial-pin-refused"
    LOSS_INITIAL_PIN_CHOICES = "loss-initial-pin-choices"
    LOSS_INITIAL_PIN_CHOICES_CLOSED = "loss-initial-pin-choices-closed"
    # Card status.
    STATUS_INTRO = "status-intro"
    STATUS_ACTIVE = "status-active"
    STATUS_LOST_TEMPORARY = "status-lost-temporary"
    STATUS_LOST_WRITTEN = "status-lost-written"
    STATUS_LOCKED = "status-locked"
    STATUS_CANCELLED = "status-cancelled"
    STATUS_PIN_INITIAL = "status-pin-initial"
    STATUS_PIN_ENABLED = "status-pin-enabled"
    # Agents and the queue (the queue ones are Asterisk's announcements, by the names
    # dialplan/queues.conf gives them).
    AGENT_HOURS = "agent-hours"
    AGENT_TRANSFER = "agent-transfer"
    QUEUE_HOLD = "queue-hold"
    QUEUE_YOUARENEXT = "queue-youarenext"
    QUEUE_THEREARE = "queue-thereare"
    QUEUE_CALLSWAITING = "queue-callswaiting"
    QUEUE_THANKYOU = "queue-thankyou"
    QUEUE_TIMEOUT = "queue-timeout"


# The prompts a PIN is keyed after. The flows ask for a PIN with these only (the type
# says so), and the simulator hides what is keyed after them.
PinPrompt = Literal[
    Prompt.ENTER_PIN,
    Prompt.ENTER_PIN_AGAIN,
    Prompt.ENTER_NEW_PIN_RULES,
    Prompt.ENTER_NEW_PIN,
    Prompt.ENTER_NEW_PIN_AGAIN,
]
PIN_PROMPTS: frozenset[str] = frozenset(str(prompt) for prompt in get_args(PinPrompt))


# A word in a number read aloud: digit-N, letter-x, count-N ("N times"), number-N (the
# plain numbers Asterisk's queue reads positions with).
Piece = NewType("Piece", str)
Sound = Prompt | Piece

_FIXED: dict[Prompt, str] = {
    Prompt.WELCOME: "您好，这里是12333社保卡服务。",
    Prompt.CARD_MENU: "挂失请按1，改密码请按2，查状态请按3，人工服务请按0。",
    Prompt.BACK_TO_MENU: "已返回菜单。",
    Prompt.AFTER_SERVICE: "其他业务请按星号，结束请挂机。",
    Prompt.INVALID_KEY: "按键有误。",
    Prompt.NO_INPUT: "没有收到按键。",
    # "You can try N more times": TRIES_LEFT, a count, TIMES.
    Prompt.TRIES_LEFT: "还可以再试",
    Prompt.TIMES: "次。",
    Prompt.TOO_MANY_TRIES: "输入错误次数过多。",
    Prompt.GOODBYE: "感谢来电，再见。",
    # The dialplan goes on to the agent queue (office hours) or the hours and goodbye.
    Prompt.SERVICE_UNAVAILABLE: "对不起，自助服务暂时无法使用。",
    # The first entry of every service says what * does there: back to the card menu.
    Prompt.ENTER_CARD_NUMBER: "请输入卡号数字，按井号结束，按星号返回。",
    Prompt.ENTER_PIN: "请输入密码，按井号结束。",
    Prompt.ENTER_PIN_AGAIN: "请重新输入密码。",
    # Here * stands for the letter X, as the prompt says.
    Prompt.ENTER_ID_NUMBER: "请输入身份证号，字母X按星号，按井号结束。",
    Prompt.ID_NUMBER_INVALID: "身份证号有误。",
    # The first new-PIN entry states the rules before the caller picks one.
    Prompt.ENTER_NEW_PIN_RULES: (
        "新密码为六位数字，不能用重复、连续或键盘成线的数字，也不能用生日或证件号。请输入新密码。"
    ),
    Prompt.ENTER_NEW_PIN: "请输入六位新密码。",
    Prompt.ENTER_NEW_PIN_AGAIN: "请再输一次新密码。",
    Prompt.NEW_PINS_DIFFER: "两次输入的新密码不一致。",
    Prompt.PIN_RULE_LENGTH: "新密码须为六位数字。",
    Prompt.PIN_RULE_INITIAL: "新密码不能是初始密码。",
    Prompt.PIN_RULE_REPEATED: "新密码不能是同一数字。",
    Prompt.PIN_RULE_SEQUENCE: "新密码不能是连续数字。",
    Prompt.PIN_RULE_NEAR_SEQUENCE: "新密码太接近连续数字。",
    Prompt.PIN_RULE_KEYPAD: "新密码不能是键盘上连成线的数字。",
    Prompt.PIN_RULE_COMMON: "这个密码太常见，请换一个。",
    Prompt.PIN_RULE_SAME_AS_OLD: "新密码不能与原密码相同。",
    Prompt.PIN_RULE_BIRTH_DATE: "新密码不能用出生日期。",
    Prompt.PIN_RULE_ID_SUFFIX: "新密码不能用身份证号后六位。",
    Prompt.PIN_RULE_CARD_SUFFIX: "新密码不能用卡号后六位。",
    Prompt.PIN_CHANGED: "密码修改成功，请牢记新密码。",
    # "Wrong PIN. N more wrong PINs lock the card": WRONG_PIN, a count, WRONG_PIN_LOCKS.
    Prompt.WRONG_PIN: "密码错误。再错",
    Prompt.WRONG_PIN_LOCKS: "次，卡将被锁定。",
    Prompt.CARD_LOCKED: "密码错误次数过多，卡已锁定，请带身份证到社保卡服务网点解锁。",
    Prompt.NO_MATCH: "卡号或身份证号与记录不符，请重新输入。",
    Prompt.CARD_NOT_USABLE: "该卡已注销，无法办理。",
    # Wrong card or ID numbers keyed too often for this card or from this phone: paused.
    Prompt.IDENTITY_PAUSED: "卡号或身份证号错误次数过多，请稍后再试，或在工作时间转人工服务。",
    # The proof of card, ID and PIN expired, or the card changed meanwhile.
    Prompt.START_AGAIN: "操作已超时或信息已变更，请重新办理。",
    Prompt.LOSS_CONFIRM: "挂失后卡将停用，确认请按1，取消请按星号。",
    Prompt.LOSS_CANCELLED: "已取消，卡状态未变。",
    # "Please note" comes before the reference, which is read in groups after it.
    Prompt.LOSS_REPORTED: "挂失成功。请记下受理编号：",
    Prompt.LOSS_ALREADY_REPORTED: "该卡已挂失。请记下受理编号：",
    Prompt.LOSS_REFERENCE_REPEAT: "重听请按9。",
    Prompt.LOSS_INITIAL_PIN_REFUSED: "该卡还是初始密码，不能自助挂失。",
    # What the caller can do instead: change the PIN now, an agent in office hours, a counter.
    Prompt.LOSS_INITIAL_PIN_CHOICES: (
        "现在修改密码请按2，修改后即可自助挂失；人工挂失请按0；也可带身份证到网点办理。"
    ),
    Prompt.LOSS_INITIAL_PIN_CHOICES_CLOSED: (
        "现在修改密码请按2，修改后即可自助挂失；也可在工作时间人工挂失，或带身份证到网点办理。"
    ),
    Prompt.STATUS_INTRO: "您的卡状态为：",
    Prompt.STATUS_ACTIVE: "正常。",
    Prompt.STATUS_LOST_TEMPORARY: "电话临时挂失。",
    Prompt.STATUS_LOST_WRITTEN: "已书面挂失。",
    Prompt.STATUS_LOCKED: "已锁定，请带身份证到网点解锁。",
    Prompt.STATUS_CANCELLED: "已注销。",
    Prompt.STATUS_PIN_INITIAL: "仍是初始密码，请尽快修改。",
    Prompt.STATUS_PIN_ENABLED: "已设个人密码。",
    Prompt.AGENT_TRANSFER: "正在转人工服务，请稍候。等候时按星号返回自助服务。",
    Prompt.QUEUE_HOLD: "坐席全忙，请耐心等候。按星号返回自助服务。",
    Prompt.QUEUE_YOUARENEXT: "您是下一位，请稍候。",
    Prompt.QUEUE_THEREARE: "您前面还有",
    Prompt.QUEUE_CALLSWAITING: "位来电在等候。",
    Prompt.QUEUE_THANKYOU: "感谢您的耐心等待。",
    Prompt.QUEUE_TIMEOUT: "坐席全忙，请稍后再拨。再见。",
}

_PIECES: dict[str, str] = {
    # Card and reference numbers key by key, the "X" that ends some ID numbers.
    **{f"digit-{d}": DIGIT_BY_DIGIT[d] for d in range(10)},
    "letter-x": "X",
    # "N more times": 两 for two, as a measure word wants.
    **{f"count-{n}": quantity(n) for n in range(1, MAX_COUNT + 1)},
    # Plain numbers for ordinals such as the queue position (第二位, never 第两位).
    **{f"number-{n}": cardinal(n) for n in range(1, MAX_COUNT + 1)},
}


def _templates(settings: Settings) -> dict[Prompt, str]:
    days = quantity(settings.loss_report_valid_working_days)
    return {
        Prompt.AGENT_HOURS: (
            f"人工服务时间为工作日{sessions_text(settings.office_sessions)}，节假日除外。"
        ),
        Prompt.CARD_NUMBER_WRONG_LENGTH: (
            f"卡号中的字母不用输入，请只输入{cardinal(settings.card_digits)}位数字。"
        ),
        Prompt.LOSS_WRITTEN_NEXT: (f"此为临时挂失，请在{days}个工作日内到网点书面挂失。"),
    }


# Prompts whose text comes from the settings; kept literal so importing reads no settings.
TEMPLATES = frozenset(
    {Prompt.AGENT_HOURS, Prompt.CARD_NUMBER_WRONG_LENGTH, Prompt.LOSS_WRITTEN_NEXT}
)


def render(settings: Settings | None = None) -> dict[str, str]:
    """Every sound's text by id, templates filled from `settings` (default: current)."""
    prompts = {**_FIXED, **_templates(settings or get_settings())}
    return {**{prompt.value: text for prompt, text in prompts.items()}, **_PIECES}


class _Catalogue(Mapping[str, str]):
    """Read-only view that re-renders when `get_settings()` hands out a new object."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._texts: dict[str, str] = {}

    def _current(self) -> dict[str, str]:
        settings = get_settings()
        if settings is not self._settings:
            self._texts = render(settings)
            self._settings = settings
        return self._texts

    def __getitem__(self, sound_id: str) -> str:
        return self._current()[sound_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


PROMPTS: Mapping[str, str] = _Catalogue()


def sound_name(sound: Sound) -> str:
    """What Asterisk is told to play for a prompt or piece: `ivr12333/<id>`."""
    return f"{SOUNDS_SUBDIR}/{sound}"


def digits_of(number: str) -> list[Piece]:
    """The pieces reading `number` key by key: digits, and X (the end of some ID numbers).

    Anything else cannot be read aloud and raises ValueError, so nothing is skipped
    silently."""
    pieces = []
    for ch in number:
        if ch.isascii() and ch.isdigit():
            pieces.append(Piece(f"digit-{ch}"))
        elif ch in "xX":
            pieces.append(Piece("letter-x"))
        else:
            raise ValueError("only digits and X can be read aloud")
    return pieces


def count(n: int) -> Piece:
    """The quantity word for "N times" (count-2 is 两)."""
    if not 1 <= n <= MAX_COUNT:
        raise ValueError(f"no count piece for {n}")
    return Piece(f"count-{n}")

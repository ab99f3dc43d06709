"""Every Mandarin prompt the IVR plays, by id.

An id is also the sound file's name inside Asterisk's `sounds/zh/ivr12333/`, so a handler
plays `sound_path(id)`. Most texts are fixed; a few are rendered from the settings (office
hours, how long a phone loss report lasts) so that what callers hear stays true to the
configuration. `PROMPTS` renders against the current settings each time the settings
object changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from backend.settings import Settings, get_settings
from ivr.contract import SOUNDS_SUBDIR
from prompts.spoken import DIGIT_BY_DIGIT, cardinal, quantity, sessions_text

# Counts cover every "tries left" a lockout limit of up to 20 allows.
MAX_COUNT = 20

_FIXED: dict[str, str] = {
    # Menus and call flow.
    "welcome": "您好，欢迎致电12333社会保障卡服务热线。",
    "main-menu": "社会保障卡服务请按2，人工服务请按0，重听请按9。",
    "card-menu": (
        "社保卡挂失请按1，修改社保卡密码请按2，查询社保卡状态请按3，"
        "人工服务请按0，返回上一级菜单请按星号键，重听请按9。"
    ),
    "invalid-key": "对不起，您的按键有误，请重新选择。",
    "no-input": "对不起，没有收到您的按键。",
    "too-many-tries": "对不起，您的输入错误次数过多，本次操作无法继续。",
    "goodbye": "感谢您的来电，再见。",
    "system-error": "对不起，系统暂时无法办理您的业务，请稍后再试。",
    # The dialplan goes on to the agent queue (office hours) or the hours and goodbye.
    "service-unavailable": "对不起，自助语音服务暂时无法使用。",
    "please-wait": "正在为您办理，请稍候。",
    "back-to-menu": "正在为您返回主菜单。",
    # Entering numbers.
    "enter-card-number": "请输入您的社保卡卡号，只需输入数字，字母不用输入，输入完毕请按井号键。",
    "enter-pin": "请输入社保卡密码，输入完毕请按井号键。",
    "enter-id-number": (
        "请输入您的身份证号码，如号码中有字母X，请按星号键代替，输入完毕请按井号键。"
    ),
    "id-number-invalid": "您输入的身份证号码有误，请核对后重新输入。",
    "entry-restart-hint": "如需重新输入，请按星号键。",
    "enter-new-pin": "请输入六位数字的新密码，输入完毕请按井号键。",
    # The first new-PIN entry states the rules before the caller picks one.
    "enter-new-pin-rules": (
        "新密码为六位数字，不能是同一数字、连续数字或键盘上连成线的数字，"
        "也不能用出生日期或证件号码。请输入新密码，输入完毕请按井号键。"
    ),
    "enter-new-pin-again": "请再次输入新密码，输入完毕请按井号键。",
    "new-pins-differ": "两次输入的新密码不一致，请重新输入。",
    # Why a new PIN is refused; the ids follow backend.pinrules.PinRule.
    "pin-rule-length": "新密码必须是六位数字。",
    "pin-rule-initial": "新密码不能与初始密码相同。",
    "pin-rule-repeated": "新密码不能由同一个数字重复组成。",
    "pin-rule-sequence": "新密码不能是连续递增或递减的数字。",
    "pin-rule-near-sequence": "新密码不能与连续的数字只差一位。",
    "pin-rule-keypad": "新密码不能是键盘上连成线的数字。",
    "pin-rule-common": "该密码太常见，容易被猜到，请换一个。",
    "pin-rule-same-as-old": "新密码不能与原密码相同。",
    "pin-rule-birth-date": "新密码不能使用您的出生日期。",
    "pin-rule-id-suffix": "新密码不能使用身份证号码的后六位。",
    "pin-rule-card-suffix": "新密码不能使用社保卡卡号的后六位。",
    # PIN checks and outcomes.
    "pin-changed": "密码修改成功，请牢记您的新密码。",
    "wrong-pin": "密码错误，您还可以尝试",
    "attempts-left-suffix": "次。",
    "card-locked": (
        "因密码错误次数过多，您的社保卡已被锁定。请携带本人有效身份证件到社保卡服务网点办理解锁。"
    ),
    "no-match": "对不起，您输入的社保卡卡号或身份证号码与我们的记录不符。",
    "card-not-usable": "该社保卡已注销，无法办理此项业务。",
    # Wrong card or ID numbers keyed too often for this card or from this phone: paused.
    "identity-paused": (
        "对不起，该卡的卡号或身份证号码输入错误次数过多，暂时无法办理。"
        "请稍后再试，或在人工服务时间转人工服务。"
    ),
    # The proof of card, ID and PIN expired, or the card changed meanwhile.
    "start-again": "对不起，操作已超时或信息已变更，请重新办理。",
    # Loss reports.
    "loss-card-readback": "您输入的卡号是：",
    "loss-confirm": "确认挂失请按1，取消请按星号键。",
    "loss-cancelled": "已取消挂失，您的社保卡状态没有改变。",
    "loss-reported": "您的社保卡已挂失成功。请记下挂失受理编号：",
    "loss-already-reported": "该社保卡已经挂失。请记下挂失受理编号：",
    "loss-initial-pin-refused": "该社保卡尚未修改初始密码，不能通过自助语音办理挂失。",
    # Card status.
    "status-intro": "您的社保卡当前状态为：",
    "status-active": "正常。",
    "status-lost-temporary": "电话临时挂失。",
    "status-lost-written": "已书面挂失。",
    "status-locked": "已锁定。请携带本人有效身份证件到社保卡服务网点办理解锁。",
    "status-cancelled": "已注销。",
    "status-pin-initial": "该卡仍在使用初始密码，为保障您的资金安全，请尽快修改密码。",
    "status-pin-enabled": "该卡已设置个人密码。",
    # Agents and the queue.
    "agent-transfer": "正在为您转接人工服务，请稍候。等候期间返回自助语音服务请按星号键。",
    "agent-offer": "如需人工服务，请按0。",
    "queue-hold": "当前人工坐席全忙，请您耐心等候。返回自助语音服务请按星号键。",
    "queue-position": "您现在排在第",
    "queue-position-suffix": "位。",
    # Asterisk's own queue announcements, by the names queues.conf gives them.
    "queue-youarenext": "您是下一位，请稍候。",
    "queue-thereare": "您前面还有",
    "queue-callswaiting": "位来电在等候。",
    "queue-thankyou": "感谢您的耐心等待，坐席将尽快为您服务。",
    "queue-timeout": "对不起，人工坐席全忙，请您稍后再拨。感谢您的来电，再见。",
    # Pieces for reading numbers out: card and reference numbers key by key, the "X"
    # that ends some ID numbers.
    **{f"digit-{d}": DIGIT_BY_DIGIT[d] for d in range(10)},
    "letter-x": "X",
    # "You can try N more times": 两 for two, as a measure word wants.
    **{f"count-{n}": quantity(n) for n in range(1, MAX_COUNT + 1)},
    # Plain numbers for ordinals such as the queue position (第二位, never 第两位).
    **{f"number-{n}": cardinal(n) for n in range(1, MAX_COUNT + 1)},
}


def _templates(settings: Settings) -> dict[str, str]:
    days = quantity(settings.loss_report_valid_working_days)
    return {
        "agent-hours": (
            f"人工服务时间为法定工作日{sessions_text(settings.office_sessions)}，节假日除外。"
        ),
        "card-number-wrong-length": (
            f"卡号中的字母不用输入，请只输入{cardinal(settings.card_digits)}位数字。"
        ),
        "loss-reference-repeat": (
            "重听受理编号请按9。电话挂失为临时挂失，"
            f"请在{days}个工作日内携带本人有效身份证件到社保卡服务网点办理书面挂失。"
        ),
    }


# Ids whose text comes from the settings; kept literal so importing reads no settings.
TEMPLATE_IDS = frozenset({"agent-hours", "card-number-wrong-length", "loss-reference-repeat"})


def render(settings: Settings | None = None) -> dict[str, str]:
    """The whole catalogue with templates filled from `settings` (default: current)."""
    return {**_FIXED, **_templates(settings or get_settings())}


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

    def __getitem__(self, prompt_id: str) -> str:
        return self._current()[prompt_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


PROMPTS: Mapping[str, str] = _Catalogue()


def sound_path(prompt_id: str) -> str:
    """What a handler passes to Playback/Background; unknown ids fail loudly, not silently."""
    if prompt_id not in PROMPTS:
        raise KeyError(f"no prompt {prompt_id!r} in the catalogue")
    return f"{SOUNDS_SUBDIR}/{prompt_id}"


def spelled(number: str) -> list[str]:
    """Sound paths reading `number` key by key; "X" (end of an ID number) is letter-x."""
    paths = []
    for ch in number:
        if ch in "xX":
            paths.append(sound_path("letter-x"))
        elif ch.isascii() and ch.isdigit():
            paths.append(sound_path(f"digit-{ch}"))
        else:
            raise ValueError(f"cannot read {ch!r} aloud")
    return paths


def count_path(n: int) -> str:
    """The quantity word for "N more tries" (count-2 is 两)."""
    return sound_path(f"count-{n}")


def missing(ids: Iterable[str]) -> set[str]:
    """The ids that have no prompt in the catalogue."""
    return {prompt_id for prompt_id in ids if prompt_id not in PROMPTS}

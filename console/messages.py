"""Everything the console says in words: states, reasons, roles, and outcome messages."""

from __future__ import annotations

from backend.errors import InvalidInput
from backend.outcomes import CardState

ROLE_NAMES = {"agent": "坐席", "clerk": "柜员", "supervisor": "主管"}

CARD_STATES = {
    CardState.ACTIVE: "正常",
    CardState.LOST_TEMPORARY: "临时挂失",
    CardState.LOST_WRITTEN: "书面挂失",
    CardState.LOCKED: "密码已锁定",
    CardState.CANCELLED: "已注销（已补换卡）",
}

HANDOFF_REASONS = {
    "caller-asked": "来电人要求人工服务",
    "initial-pin-loss-report": "初始密码卡挂失，需人工核验",
    "retries-exhausted": "多次输入有误，转人工",
    "card-locked": "卡密码已锁定",
    "service-unavailable": "自助服务暂不可用",
}

CHANNELS = {"ivr": "电话自助", "agent": "坐席", "counter": "柜台", "operator": "管理/命令行"}

# How a call ended (backend.metrics.OUTCOMES), as the wallboard says it.
CALL_OUTCOMES = {
    "served": "自助办结",
    "agent": "转人工",
    "hung_up": "未办结挂机",
    "ended": "未办结结束",
    "failed": "服务故障",
    "shutdown": "停机结束",
}

# Counter actions: the words on the form, the confirmation and the result.
COUNTER_ACTIONS = {
    "written-loss-report": "书面挂失",
    "cancel-loss-report": "解除挂失",
    "unlock": "解锁（密码锁定）",
    "reset-pin": "密码重置为初始密码",
    "issue-replacement": "补换卡（注销原卡）",
}

REFUSALS = {
    "not-locked": "该卡密码未锁定，无需解锁。",
    "cancelled": "该卡已注销，不能办理此业务。",
    "no-active-report": "该卡没有有效的挂失登记（或已补换卡），不能办理此业务。",
}

NO_MATCH = "卡号、姓名与身份证号码不一致，或没有这张卡。请核对后重试。"
NOT_USABLE = "该卡已注销（已补换卡），不能办理。"
UNAVAILABLE = "系统暂时无法处理，请稍后再试。本次操作未做任何更改。"
EXPIRED = "核验结果已失效（超过时限或已使用），请重新核验。"

_INVALID = {
    "card-number": "卡号格式不正确：卡号为 8 到 9 位数字，前面可有 1 到 2 个字母。",
    "card-digits": "卡号格式不正确：卡号为 8 到 9 位数字。",
    "id-number": "身份证号码不正确（位数或校验位不符），请核对。",
    "name": "请填写持卡人姓名（不超过 64 个字）。",
    "username": "用户名为 3 到 32 个字符：以小写字母开头，可含数字及 . _ -。",
    "username-taken": "该用户名已存在。",
    "password": "密码长度须为 10 到 128 个字符。",
    "display-name": "请填写姓名（不超过 64 个字）。",
    "role": "请选择角色。",
    "call-id": "来电编号不正确。",
    "span": "日期范围不正确：截止日期不能早于起始日期，且最多 92 天。",
}


def invalid_input(exc: InvalidInput) -> str:
    return _INVALID.get(exc.code, "输入有误，请核对后重试。")


def card_state(state: CardState) -> str:
    return CARD_STATES.get(state, str(state))


def reason(code: str) -> str:
    return HANDOFF_REASONS.get(code, code)

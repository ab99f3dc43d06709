from __future__ import annotations

import re

import pytest

from backend.pinrules import PinRule
from prompts.catalogue import PROMPTS, TEMPLATE_IDS, count_path, missing, sound_path, spelled

# The ids the call handlers play.
REQUIRED = [
    "welcome",
    "main-menu",
    "card-menu",
    "invalid-key",
    "no-input",
    "too-many-tries",
    "goodbye",
    "system-error",
    "service-unavailable",
    "enter-card-number",
    "card-number-wrong-length",
    "enter-pin",
    "enter-id-number",
    "id-number-invalid",
    "entry-restart-hint",
    "enter-new-pin",
    "enter-new-pin-rules",
    "enter-new-pin-again",
    "new-pins-differ",
    "pin-rule-length",
    "pin-rule-initial",
    "pin-rule-repeated",
    "pin-rule-sequence",
    "pin-rule-near-sequence",
    "pin-rule-keypad",
    "pin-rule-common",
    "pin-rule-same-as-old",
    "pin-rule-birth-date",
    "pin-rule-id-suffix",
    "pin-rule-card-suffix",
    "pin-changed",
    "wrong-pin",
    "attempts-left-suffix",
    "card-locked",
    "no-match",
    "card-not-usable",
    "loss-card-readback",
    "loss-confirm",
    "loss-cancelled",
    "loss-reported",
    "loss-reference-repeat",
    "loss-already-reported",
    "loss-initial-pin-refused",
    "status-intro",
    "status-active",
    "status-lost-temporary",
    "status-lost-written",
    "status-locked",
    "status-cancelled",
    "status-pin-initial",
    "status-pin-enabled",
    "agent-transfer",
    "agent-hours",
    "agent-offer",
    "back-to-menu",
    "queue-hold",
    "queue-position",
    "queue-position-suffix",
    "queue-timeout",
    "letter-x",
]
REQUIRED += [f"digit-{d}" for d in range(10)] + [f"count-{n}" for n in range(1, 10)]


def test_every_required_prompt_is_catalogued() -> None:
    assert missing(REQUIRED) == set()


def test_missing_names_unknown_ids() -> None:
    assert missing(["welcome", "no-such-prompt"]) == {"no-such-prompt"}


def test_every_pin_rule_has_a_prompt() -> None:
    assert missing(f"pin-rule-{rule}" for rule in PinRule) == set()


def test_ids_are_safe_file_names() -> None:
    for prompt_id in PROMPTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", prompt_id), prompt_id


def test_texts_are_mandarin() -> None:
    for prompt_id, text in PROMPTS.items():
        assert text.strip(), prompt_id
        if not prompt_id.startswith(("digit-", "letter-")):
            assert re.search(r"[\u4e00-\u9fff]", text), prompt_id


def test_digits_are_read_key_by_key() -> None:
    assert [PROMPTS[f"digit-{d}"] for d in range(10)] == list("零幺二三四五六七八九")


def test_counts_are_quantities() -> None:
    assert PROMPTS["count-1"] == "一"
    assert PROMPTS["count-2"] == "两"
    assert PROMPTS["count-9"] == "九"


def test_sound_path() -> None:
    assert sound_path("welcome") == "ivr12333/welcome"
    assert count_path(2) == "ivr12333/count-2"
    with pytest.raises(KeyError):
        sound_path("no-such-prompt")


def test_spelled_reads_an_id_number() -> None:
    assert spelled("10X") == ["ivr12333/digit-1", "ivr12333/digit-0", "ivr12333/letter-x"]
    with pytest.raises(ValueError):
        spelled("1-2")


def test_default_templates() -> None:
    assert PROMPTS["agent-hours"] == (
        "人工服务时间为法定工作日上午九点至十二点、下午一点三十分至五点，节假日除外。"
    )
    assert "五个工作日内" in PROMPTS["loss-reference-repeat"]


def test_templates_follow_the_settings(fresh_settings: pytest.MonkeyPatch) -> None:
    from backend.settings import reset_settings

    fresh_settings.setenv("IVR_OFFICE_HOURS", "08:30-11:30,14:00-18:00")
    fresh_settings.setenv("IVR_LOSS_REPORT_VALID_WORKING_DAYS", "2")
    reset_settings()
    assert "上午八点三十分至十一点三十分、下午两点至六点" in PROMPTS["agent-hours"]
    assert "两个工作日内" in PROMPTS["loss-reference-repeat"]
    assert set(PROMPTS) >= TEMPLATE_IDS

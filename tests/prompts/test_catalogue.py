"""The catalogue: every typed prompt has a Mandarin text, pieces read numbers, templates
follow the settings."""

from __future__ import annotations

import re

import pytest

from prompts.catalogue import (
    PROMPTS,
    TEMPLATES,
    Prompt,
    count,
    digits_of,
    sound_name,
)


def test_every_prompt_has_a_text_and_nothing_else_does() -> None:
    """Each Prompt member has a text; every other catalogued id is a numbered piece."""
    for prompt in Prompt:
        assert PROMPTS[prompt].strip(), prompt
    others = set(PROMPTS) - {p.value for p in Prompt}
    assert others and all(re.fullmatch(r"(digit|count|number)-\d+|letter-x", o) for o in others)


def test_ids_are_safe_file_names() -> None:
    """Ids become file names inside Asterisk's sounds folder."""
    for prompt_id in PROMPTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", prompt_id), prompt_id


def test_texts_are_mandarin() -> None:
    """Every text but the letter X is Mandarin."""
    for prompt_id, text in PROMPTS.items():
        assert text.strip(), prompt_id
        if not prompt_id.startswith(("digit-", "letter-")):
            assert re.search(r"[\u4e00-\u9fff]", text), prompt_id


def test_digits_are_read_key_by_key() -> None:
    """One is 幺 when read key by key."""
    assert [PROMPTS[f"digit-{d}"] for d in range(10)] == list("零幺二三四五六七八九")


def test_counts_are_quantities() -> None:
    """Two times is 两次."""
    assert PROMPTS[count(1)] == "一"
    assert PROMPTS[count(2)] == "两"
    assert PROMPTS[count(9)] == "九"
    with pytest.raises(ValueError):
        count(0)


def test_sound_name() -> None:
    """Asterisk is told `ivr12333/<id>`, for a prompt and a piece alike."""
    assert sound_name(Prompt.WELCOME) == "ivr12333/welcome"
    assert sound_name(count(2)) == "ivr12333/count-2"


def test_digits_of_reads_an_id_number_and_refuses_the_rest() -> None:
    """Digits and X only: nothing is skipped silently."""
    assert digits_of("10X") == ["digit-1", "digit-0", "letter-x"]
    with pytest.raises(ValueError):
        digits_of("1-2")


def test_default_templates() -> None:
    """The office hours and the written report's deadline come from the settings."""
    assert PROMPTS[Prompt.AGENT_HOURS] == (
        "人工服务时间为工作日上午九点至十二点、下午一点三十分至五点，节假日除外。"
    )
    assert "五个工作日内" in PROMPTS[Prompt.LOSS_WRITTEN_NEXT]


def test_templates_follow_the_settings(fresh_settings: pytest.MonkeyPatch) -> None:
    """Changed settings change what callers hear."""
    from backend.settings import reset_settings

    fresh_settings.setenv("IVR_OFFICE_HOURS", "08:30-11:30,14:00-18:00")
    fresh_settings.setenv("IVR_LOSS_REPORT_VALID_WORKING_DAYS", "2")
    fresh_settings.setenv("IVR_CARD_DIGITS", "9")
    reset_settings()
    assert "上午八点三十分至十一点三十分、下午两点至六点" in PROMPTS[Prompt.AGENT_HOURS]
    assert "两个工作日内" in PROMPTS[Prompt.LOSS_WRITTEN_NEXT]
    assert "九位数字" in PROMPTS[Prompt.CARD_NUMBER_WRONG_LENGTH]
    assert {t.value for t in TEMPLATES} <= set(PROMPTS)

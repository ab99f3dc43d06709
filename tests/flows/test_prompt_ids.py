"""Every prompt is played somewhere, every one played is catalogued and built in every
format. Typed ids make a mistyped prompt a mypy error; these tests keep the catalogue
free of prompts nothing plays."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backend.outcomes import CardState
from backend.pinrules import PinRule
from ivr.flows.card_status import STATE_PROMPTS
from ivr.flows.common import RULE_PROMPTS
from prompts.catalogue import MAX_COUNT, PROMPTS, Prompt

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("sln", "ulaw", "alaw", "sln16")


def prompts_in_code() -> set[Prompt]:
    """`Prompt.X` as written in the production code that talks to callers."""
    found: set[Prompt] = set()
    for path in [*(ROOT / "ivr").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Prompt"
            ):
                found.add(Prompt[node.attr])
    return found


def prompts_in_dialplan() -> set[str]:
    lines = [
        line.split(";", 1)[0]  # comments are not played
        for path in (ROOT / "dialplan").rglob("*.conf")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return set(re.findall(r"ivr12333/([a-z0-9-]*[a-z0-9])\b", "\n".join(lines)))


def test_the_scan_finds_what_the_flows_play() -> None:
    """The scan itself works: it sees prompts the flows are known to play."""
    found = prompts_in_code()
    assert {Prompt.WELCOME, Prompt.ENTER_ID_NUMBER, Prompt.LOSS_CONFIRM} <= found


def test_every_prompt_is_played_somewhere() -> None:
    """No catalogued prompt is left unplayed (the flows or the dialplan play each)."""
    played = {p.value for p in prompts_in_code()} | prompts_in_dialplan()
    unplayed = sorted(p.value for p in Prompt if p.value not in played)
    assert unplayed == []


def test_every_dialplan_prompt_is_catalogued() -> None:
    """The dialplan's apology, hours and queue announcements are catalogued too."""
    ids = prompts_in_dialplan()
    assert "service-unavailable" in ids
    assert ids - set(PROMPTS) == set()


def test_every_rule_and_state_has_its_prompt() -> None:
    """A new PIN rule or card state cannot go unspoken."""
    assert set(RULE_PROMPTS) == set(PinRule)
    assert set(STATE_PROMPTS) == set(CardState)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prompts.build import build, sound_dir

    out = tmp_path_factory.mktemp("sounds")
    build(out)
    return sound_dir(out)


def test_every_prompt_and_piece_is_built_in_every_format(built: Path) -> None:
    """Each sound has .sln, .ulaw, .alaw and .sln16 files."""
    wanted = set(PROMPTS)
    assert {f"count-{MAX_COUNT}", "letter-x", "digit-0"} <= wanted
    absent = [
        f"{pid}.{fmt}"
        for pid in sorted(wanted)
        for fmt in FORMATS
        if not (built / f"{pid}.{fmt}").is_file()
    ]
    assert absent == []

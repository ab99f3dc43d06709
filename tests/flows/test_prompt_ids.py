"""Every prompt a handler or the dialplan plays is catalogued and built in every format."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backend.pinrules import PinRule
from backend.settings import get_settings
from prompts.catalogue import PROMPTS, missing

ROOT = Path(__file__).resolve().parents[2]
# Functions whose string arguments are prompt ids.
PROMPT_TAKERS = {
    "play",
    "menu",
    "ask",
    "choose_after",
    "choose",
    "ask_pin",
    "ask_new_pin",
    "read_reference",
}
FORMATS = ("sln", "ulaw", "alaw", "sln16")


def literal_prompt_ids() -> set[str]:
    ids: set[str] = set()
    sources = [
        *(ROOT / "ivr" / "flows").glob("*.py"),
        ROOT / "ivr" / "caller.py",
        ROOT / "ivr" / "server.py",
    ]
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in PROMPT_TAKERS:
                    ids.update(
                        a.value
                        for a in node.args
                        if isinstance(a, ast.Constant)
                        and isinstance(a.value, str)
                        and re.fullmatch(r"[a-z][a-z0-9-]+", a.value)
                    )
            if isinstance(node, ast.IfExp):
                ids.update(
                    n.value
                    for n in (node.body, node.orelse)
                    if isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", n.value)
                )
    from ivr.flows.card_status import _STATE_PROMPTS

    ids.update(_STATE_PROMPTS.values())
    return ids


def generated_prompt_ids() -> set[str]:
    """Ids built at run time: rules, digits, the ID's X and counts of tries left."""
    limit = get_settings().lockout_limit
    return (
        {f"pin-rule-{rule}" for rule in PinRule}
        | {f"digit-{d}" for d in range(10)}
        | {"letter-x"}
        | {f"count-{n}" for n in range(1, limit)}
    )


def dialplan_prompt_ids() -> set[str]:
    lines = [
        line.split(";", 1)[0]  # comments are not played
        for path in (ROOT / "dialplan").rglob("*.conf")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return set(re.findall(r"ivr12333/([a-z0-9-]*[a-z0-9])\b", "\n".join(lines)))


def test_scan_finds_the_handlers_prompts() -> None:
    """The scan itself works: it sees prompts the flows are known to play."""
    found = literal_prompt_ids()
    assert {"welcome", "main-menu", "enter-id-number", "loss-confirm", "pin-changed"} <= found
    assert len(found) > 30


def test_every_handler_prompt_is_catalogued() -> None:
    """No handler plays a prompt id the catalogue lacks."""
    assert missing(literal_prompt_ids() | generated_prompt_ids()) == set()


def test_every_dialplan_prompt_is_catalogued() -> None:
    """The dialplan's apology, hours and queue announcements are catalogued too."""
    ids = dialplan_prompt_ids()
    assert "service-unavailable" in ids
    assert missing(ids) == set()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prompts.build import build, sound_dir

    out = tmp_path_factory.mktemp("sounds")
    build(out)
    return sound_dir(out)


def test_every_used_prompt_is_built_in_every_format(built: Path) -> None:
    """Each prompt a handler or the dialplan uses has .sln, .ulaw, .alaw and .sln16 files."""
    used = literal_prompt_ids() | generated_prompt_ids() | dialplan_prompt_ids()
    absent = [
        f"{pid}.{fmt}"
        for pid in sorted(used)
        for fmt in FORMATS
        if not (built / f"{pid}.{fmt}").is_file()
    ]
    assert absent == []
    assert len(PROMPTS) >= len(used)

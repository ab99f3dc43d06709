"""The operator's `ivr12333 cards` and `db status` commands, run as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backend.db.engine import get_engine
from backend.masking import mask_card, mask_id
from backend.outcomes import Actor, Channel, Verified
from backend.services.verify import verify_pin
from tests.conftest import (
    ROOT,
    USED_SECRETS,
    IssuedCard,
    make_card_number,
    make_id_number,
    make_pin,
)

Issue = Callable[..., Awaitable[IssuedCard]]
IVR12333 = ROOT / ".venv" / "bin" / "ivr12333"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(
    database_url: str,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
) -> Ran:
    """Run `ivr12333 ARGS` against the test database, `stdin` on its standard input, with
    `env` added to and `unset` removed from the tests' environment."""
    env = {**os.environ, "IVR_DATABASE_URL": database_url, **(env or {})}
    for name in unset:
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        str(IVR12333),
        *args,
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    data = None if stdin is None else stdin.encode()
    out, err = await asyncio.wait_for(process.communicate(data), timeout=60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def counts() -> tuple[int, ...]:
    """Rows in every table a card command could touch."""
    async with get_engine().connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM cardholders), (SELECT count(*) FROM cards),"
                    " (SELECT count(*) FROM loss_reports), (SELECT count(*) FROM audit_events)"
                )
            )
        ).one()
    return tuple(row)


async def test_add_then_show(db: str) -> None:
    """`cards add` issues a card on the initial PIN; `cards show --json` reports it masked."""
    number, id_number = make_card_number(), make_id_number()
    added = await run_cli(
        db, "cards", "add", "--card-number", number, "--id-number", id_number, "--name", "孙七"
    )
    assert added.returncode == 0, added.stderr
    assert added.stderr == ""
    assert id_number not in added.stdout
    shown = await run_cli(db, "cards", "show", number, "--json")
    assert shown.returncode == 0, shown.stderr
    data: dict[str, Any] = json.loads(shown.stdout)
    assert data["card_number"] == number
    assert data["holder_name"] == "孙七"
    assert data["id_number"] == mask_id(id_number)
    assert data["status"] == "active"
    assert data["pin_is_initial"] is True
    assert data["failed_attempts"] == 0
    assert data["attempts_left"] == 6
    assert data["locked"] is False
    assert data["active_loss_report"] is None
    assert id_number not in shown.stdout


async def test_add_with_an_enabled_pin(db: str) -> None:
    """`cards add --pin` reads the PIN from standard input and issues a card whose PIN is
    enabled and works."""
    number, id_number, pin = make_card_number(), make_id_number(), make_pin()
    added = await run_cli(
        db,
        "cards",
        "add",
        "--card-number",
        number,
        "--id-number",
        id_number,
        "--name",
        "周八",
        "--pin",
        "--json",
        stdin=f"{pin}\n",
    )
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert data["pin_is_initial"] is False
    assert pin not in added.stdout
    digits = number[1:]
    verified = await verify_pin(digits, id_number, pin, Actor(Channel.IVR, "cli-check"))
    assert isinstance(verified, Verified)


@dataclass(frozen=True)
class BadCase:
    name: str
    args: list[str]
    says: str  # what the one line must mention
    stdin: str | None = None


def _bad_cases(existing: IssuedCard) -> list[BadCase]:
    good_id = make_id_number()
    wrong_check = good_id[:17] + ("1" if good_id[17] != "1" else "2")
    USED_SECRETS.update({wrong_check, "12a45", "345678"})

    def add(card: str, id_number: str) -> list[str]:
        return ["cards", "add", "--card-number", card, "--id-number", id_number, "--name", "吴九"]

    return [
        BadCase("wrong check digit", add(make_card_number(), wrong_check), "ID number"),
        BadCase(
            "duplicate card",
            add(existing.card_number, good_id),
            f"card {mask_card(existing.card_number)} exists already",
        ),
        BadCase("malformed PIN", [*add(make_card_number(), good_id), "--pin"], "PIN", "12a45\n"),
        BadCase(
            "PIN breaking a rule",
            [*add(make_card_number(), good_id), "--pin"],
            "sequence",
            "345678\n",
        ),
        BadCase("no PIN given", [*add(make_card_number(), good_id), "--pin"], "no PIN", ""),
        BadCase(
            "PIN on the command line",
            [*add(make_card_number(), good_id), "--pin", "345678"],
            "visible to every user",
        ),
        BadCase("malformed card number", add("A12", good_id), "card number"),
        BadCase("unknown card", ["cards", "show", make_card_number()], "no card"),
    ]


@pytest.mark.parametrize("case_index", range(8))
async def test_bad_input_gives_one_line_and_changes_nothing(
    issue: Issue, database_url: str, case_index: int
) -> None:
    """Each kind of bad input exits non-zero with one clear stderr line and no change."""
    existing = await issue()
    case = _bad_cases(existing)[case_index]
    before = await counts()
    ran = await run_cli(database_url, *case.args, stdin=case.stdin)
    assert ran.returncode == 1, case.name
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, (case.name, ran.stderr)
    assert lines[0].startswith("ivr12333 cards: "), lines[0]
    assert case.says in lines[0], (case.name, lines[0])
    assert "Traceback" not in ran.stderr
    assert existing.card_number not in ran.stderr
    assert ran.stdout == ""
    for arg in [*case.args, (case.stdin or "").strip()]:
        if arg in USED_SECRETS:
            assert arg not in lines[0]
    assert await counts() == before, case.name


async def test_db_status_with_an_external_database(db: str) -> None:
    """With IVR_DATABASE_URL set, `db status` says the local cluster is not used."""
    ran = await run_cli(db, "db", "status")
    assert ran.returncode == 0, ran.stderr
    assert "IVR_DATABASE_URL is set" in ran.stdout
    assert ran.stderr == ""


async def test_show_after_a_change_in_the_backend(issue: Issue, database_url: str) -> None:
    """`cards show` reflects the database: a wrong PIN and a loss report appear."""
    from backend.services.report_loss import report_loss_by_staff

    card = await issue(pin=make_pin())
    wrong = make_pin()
    while wrong == card.pin:
        wrong = make_pin()
    actor = Actor(Channel.AGENT, f"agent-{uuid.uuid4().hex[:8]}")
    await verify_pin(card.digits, card.id_number, wrong, actor)
    reported = await report_loss_by_staff(card.card_number, card.id_number, actor)
    ran = await run_cli(database_url, "cards", "show", card.card_number, "--json")
    data = json.loads(ran.stdout)
    assert data["failed_attempts"] == 1 and data["attempts_left"] == 5
    assert data["status"] == "lost-temporary"
    report = data["active_loss_report"]
    assert report["reference"] == getattr(reported, "reference", None)
    assert (report["channel"], report["kind"]) == ("agent", "temporary")
    assert report["expires_at"] is not None


@pytest.mark.parametrize(
    ("server", "args"),
    [
        ("FastAGI server", ["agi", "serve", "--host", "0.0.0.0", "--port", "0"]),  # noqa: S104
        ("console", ["console", "serve", "--host", "0.0.0.0", "--port", "0"]),  # noqa: S104
    ],
)
async def test_servers_refuse_public_binds_on_development_secrets(
    db: str, tmp_path: Path, server: str, args: list[str]
) -> None:
    """Told to listen on every address with the install's own secrets, a server refuses
    at once with one line saying why and what to do."""
    env = {"IVR_ENV": "dev", "IVR_DATA_DIR": str(tmp_path)}
    ran = await run_cli(db, *args, env=env, unset=("IVR_PIN_PEPPER",))
    assert ran.returncode == 1, ran
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert f"refusing to serve the {server} on 0.0.0.0" in lines[0]
    assert "IVR_ENV=prod" in lines[0]
    assert ran.stdout == ""


async def test_production_without_a_pepper_says_so(db: str, tmp_path: Path) -> None:
    """`IVR_ENV=prod` with no pepper stops every command with one configuration line."""
    ran = await run_cli(
        db, "cards", "show", "A12345678", env={"IVR_ENV": "prod"}, unset=("IVR_PIN_PEPPER",)
    )
    assert ran.returncode == 1
    assert ran.stderr.startswith("ivr12333 cards: configuration: "), ran.stderr
    assert "IVR_PIN_PEPPER or IVR_PIN_PEPPER_FILE is required" in ran.stderr
    assert "Traceback" not in ran.stderr


async def test_the_pin_is_never_on_the_command_line(db: str) -> None:
    """While `cards add --pin` waits for its PIN, the process list shows no PIN; the PIN
    written to its standard input then enables the card."""
    number, id_number, pin = make_card_number(), make_id_number(), make_pin()
    env = {**os.environ, "IVR_DATABASE_URL": db}
    args = ["cards", "add", "--card-number", number, "--id-number", id_number]
    process = await asyncio.create_subprocess_exec(
        str(IVR12333),
        *args,
        "--name",
        "郑十",
        "--pin",
        "--json",
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    command_line = await asyncio.to_thread(Path(f"/proc/{process.pid}/cmdline").read_bytes)
    assert b"--pin" in command_line
    assert pin.encode() not in command_line
    out, err = await asyncio.wait_for(process.communicate(f"{pin}\n".encode()), 60)
    assert process.returncode == 0, err
    assert json.loads(out)["pin_is_initial"] is False
    verified = await verify_pin(number[1:], id_number, pin, Actor(Channel.IVR, "cli-check"))
    assert isinstance(verified, Verified)


async def test_simulate_reads_keys_from_standard_input(issue: Issue, database_url: str) -> None:
    """`simulate --keys -` takes the key groups on standard input: the PIN is changed, the
    transcript prints each PIN entry as dots and the command line holds no key."""
    card = await issue()
    new = make_pin()
    keys = f"2 {card.digits}# 123456# {card.id_number.replace('X', '*')}# {new}# {new}# *"
    ran = await run_cli(database_url, "simulate", "--keys", "-", stdin=keys + "\n")
    assert ran.returncode == 0, ran.stderr
    assert "密码修改成功" in ran.stdout
    assert "☎ ••••••#" in ran.stdout
    assert new not in ran.stdout and "123456" not in ran.stdout
    assert ran.stderr == ""
    shown = await run_cli(database_url, "cards", "show", card.card_number, "--json")
    assert json.loads(shown.stdout)["pin_is_initial"] is False


async def test_simulate_warns_about_keys_on_the_command_line(db: str) -> None:
    """Inline keys long enough to be a PIN still run, with a warning naming the safe way."""
    ran = await run_cli(db, "simulate", "--keys", "2 10000009# !")
    assert ran.returncode == 0, ran.stderr
    assert "warning: keys on the command line are visible" in ran.stderr
    assert "--keys -" in ran.stderr
    quiet = await run_cli(db, "simulate", "--keys", "2 9 !")
    assert quiet.stderr == ""

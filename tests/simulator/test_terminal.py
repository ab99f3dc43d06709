"""`ivr12333 simulate --interactive` for a person at a terminal (a real pseudo-terminal):
the prompts' Mandarin text, a `> ` for each entry, and PINs never echoed."""

from __future__ import annotations

import asyncio
import os
import pty
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from backend.outcomes import Actor, Channel, Verified
from backend.services.verify import verify_pin
from tests.conftest import ROOT, IssuedCard, make_pin

Issue = Callable[..., Awaitable[IssuedCard]]
IVR12333 = ROOT / ".venv" / "bin" / "ivr12333"
CTRL_D = "\x04"


class Screen:
    """What the terminal shows, read from the pseudo-terminal's master side."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.text = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.text += data.decode(errors="replace")

    async def wait_for(self, needle: str, start: int) -> int:
        """Until `needle` shows after `start`; where it ends."""
        for _ in range(1200):
            with self._lock:
                found = self.text.find(needle, start)
            if found >= 0:
                return found + len(needle)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{needle!r} never shown; screen so far:\n{self.text[start:]}")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


def answer(shown: str, card: IssuedCard, new_pin: str) -> str:
    """The entry for the prompt on the last line shown."""
    prompt = shown.strip().splitlines()[-1]
    if "新密码" in prompt:
        return f"{new_pin}#"
    if "身份证" in prompt:
        return card.id_number.replace("X", "*") + "#"
    if "密码" in prompt:
        return f"{card.pin}#"
    if "卡号" in prompt:
        return f"{card.digits}#"
    raise AssertionError(f"unexpected prompt {prompt}")


async def test_a_person_changes_a_pin_and_the_pins_are_never_echoed(
    issue: Issue, database_url: str, tmp_path: Path
) -> None:
    """At a terminal: Mandarin prompts, `> ` at each entry; the card and ID numbers typed
    are echoed as usual, the old and new PINs never are (dots instead); Ctrl-D hangs up.
    The PIN change lands in PostgreSQL."""
    card = await issue()
    new_pin = make_pin()
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        str(IVR12333),
        "simulate",
        "--interactive",
        "--sounds",
        str(tmp_path),
        env={**os.environ, "IVR_DATABASE_URL": database_url},
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(slave)
    screen = Screen(master)
    try:
        at = await screen.wait_for("这里是12333", 0)
        for entry in range(7):
            shown_from = at
            at = await screen.wait_for("> ", at)
            if entry < 1:
                screen.type("2\n")  # change the PIN
            elif entry < 6:
                screen.type(answer(screen.text[shown_from : at - 2], card, new_pin) + "\n")
            else:
                screen.type(CTRL_D)  # done: hang up when offered another service
        await screen.wait_for("— caller-hangup", at)
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert code == 0, err
    assert "密码修改成功" in screen.text
    assert f"{card.digits}#" in screen.text  # echoed: the terminal does echo entries
    assert card.pin not in screen.text and new_pin not in screen.text
    assert screen.text.count("••••••") == 3
    outcome = await verify_pin(card.digits, card.id_number, new_pin, Actor(Channel.IVR, "test"))
    assert isinstance(outcome, Verified)


async def test_text_mode_on_a_pipe_shows_keys_but_no_pin(
    issue: Issue, database_url: str, tmp_path: Path
) -> None:
    """Text mode on a pipe (nothing echoes): each entry is shown after its `> `, a PIN as
    dots; end of input hangs up; nothing on stderr."""
    card = await issue(pin=make_pin())
    keys = f"3\n{card.digits}#\n{card.pin}#\n{card.id_number.replace('X', '*')}#\n"
    process = await asyncio.create_subprocess_exec(
        str(IVR12333),
        "simulate",
        "--interactive",
        "--sounds",
        str(tmp_path),
        env={**os.environ, "IVR_DATABASE_URL": database_url},
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(keys.encode()), 60)
    assert process.returncode == 0, err
    text = out.decode()
    assert "🔊 您好，这里是12333社保卡服务。" in text
    shown = [line for line in text.splitlines() if line.startswith("> ")]
    assert shown[:4] == [
        "> 3",
        f"> {card.digits}#",
        "> ••••••",  # the PIN, as dots
        f"> {card.id_number.replace('X', '*')}#",
    ]
    assert "> ••••••" in shown and card.pin not in text
    assert "您的卡状态为：" in text
    assert text.rstrip().endswith("— caller-hangup")
    assert err == b""

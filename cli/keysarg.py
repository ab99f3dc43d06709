"""Key scripts for `simulate` and `call`: given inline, or read from standard input.

Keys typed at a hotline include PINs, and a command line is readable by every user of the
machine (ps, /proc) and kept in shell history; `--keys -` reads them from standard input
instead, and an inline script that looks like it carries a PIN draws a warning.
"""

from __future__ import annotations

import re
import sys

STDIN = "-"
# A group of six or more keys is a PIN, a card or an ID number.
_LONG_GROUP = re.compile(r"[0-9A-D*]{6,}")


def help_text(what: str) -> str:
    return f"{what}; `-` reads them from standard input (use that for PINs)"


def read_keys(value: str, command: str) -> str:
    """The key script: `value`, or standard input when it is `-`."""
    if value == STDIN:
        return sys.stdin.read().strip() if sys.stdin is not None else ""
    if _LONG_GROUP.search(value):
        print(
            f"ivr12333 {command}: warning: keys on the command line are visible to every "
            f"user of this machine; for PINs pipe them in: echo '...' | ivr12333 {command} "
            "... --keys -",
            file=sys.stderr,
        )
    return value

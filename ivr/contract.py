"""The contract between the dialplan and the Python handlers, in one place.

Channel variables the handlers set for the dialplan (and for the agent's screen), and the
values the dialplan branches on. `dialplan/extensions.conf` uses the same names.
"""

from __future__ import annotations

from typing import Final

# AGI script names, as in agi://HOST:PORT/<script>.
SCRIPT_MAIN: Final = "main"
SCRIPT_CHANGE_PIN: Final = "change-pin"
SCRIPT_REPORT_LOSS: Final = "report-loss"

# What the dialplan does once the AGI script returns with AGISTATUS=SUCCESS.
VAR_NEXT: Final = "IVR_NEXT"
NEXT_AGENT: Final = "agent"  # go to the agent queue
NEXT_HANGUP: Final = "hangup"  # the handler said goodbye already

# The agent's screen: why the caller wants an agent, which card (masked), which call.
VAR_AGENT_REASON: Final = "IVR_AGENT_REASON"
VAR_CARD_MASKED: Final = "IVR_CARD_MASKED"
VAR_CALL_ID: Final = "IVR_CALL_ID"

# Reasons for a hand-off, also shown on the console.
REASON_CALLER_ASKED: Final = "caller-asked"
REASON_INITIAL_PIN_LOSS: Final = "initial-pin-loss-report"
REASON_RETRIES_EXHAUSTED: Final = "retries-exhausted"
REASON_CARD_LOCKED: Final = "card-locked"
# Set by the dialplan itself when no FastAGI server could take the call.
REASON_IVR_UNAVAILABLE: Final = "ivr-unavailable"

# Prompt folder inside Asterisk's sounds/zh/.
SOUNDS_SUBDIR: Final = "ivr12333"

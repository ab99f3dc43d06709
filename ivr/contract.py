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
SCRIPT_CARD_STATUS: Final = "card-status"
# A demo that reads back what the caller keys: smoke tests and the bench.
SCRIPT_ECHO: Final = "echo"

# What the dialplan does once the AGI script returns with AGISTATUS=SUCCESS.
VAR_NEXT: Final = "IVR_NEXT"
NEXT_AGENT: Final = "agent"  # go to the agent queue
NEXT_HANGUP: Final = "hangup"  # the handler said goodbye already
# The handler could not serve the caller: the card service (the database) failed or did
# not answer in time, or the handler itself failed. The handler says nothing about it and
# returns at once; the dialplan apologises, once, and its fallback decides: the agent
# queue in office hours, else the hours and a goodbye. The same apology and fallback
# follow when no FastAGI server takes the call or the handler returns without IVR_NEXT
# (its server died), so a caller never hears two apologies, whoever failed.
NEXT_UNAVAILABLE: Final = "unavailable"

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
# Set by the handler with NEXT_UNAVAILABLE: the self-service could not reach the card service.
REASON_SERVICE_UNAVAILABLE: Final = "service-unavailable"

# Prompt folder inside Asterisk's sounds/zh/.
SOUNDS_SUBDIR: Final = "ivr12333"

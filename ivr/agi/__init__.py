"""The FastAGI adapter: pyst2 over an asyncio socket, run from a greenlet per call.

`await_(coro)` lets flow code (plain synchronous functions) wait for backend coroutines.
"""

from ivr.agi.bridge import await_
from ivr.agi.channel import AgiChannel, Entry, QuietAGI
from ivr.agi.env import CallInfo
from ivr.agi.errors import AgiProtocolError, CallEnding, CallerHungUp

__all__ = [
    "AgiChannel",
    "AgiProtocolError",
    "CallEnding",
    "CallInfo",
    "CallerHungUp",
    "Entry",
    "QuietAGI",
    "await_",
]

"""The table of AGI scripts: `agi://host:port/<script>` -> what runs the call.

The one place a script gets its name; the dialplan names the same scripts
(`ivr/contract.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ivr.contract import (
    SCRIPT_CARD_STATUS,
    SCRIPT_CHANGE_PIN,
    SCRIPT_ECHO,
    SCRIPT_MAIN,
    SCRIPT_REPORT_LOSS,
)
from ivr.flows.card_status import card_status_flow
from ivr.flows.change_pin import change_pin_flow
from ivr.flows.echo import echo
from ivr.flows.main import main
from ivr.flows.report_loss import report_loss_flow
from ivr.flows.script import Script, as_script, service_script

SCRIPTS: Mapping[str, Script] = MappingProxyType(
    {
        SCRIPT_MAIN: as_script(main),
        SCRIPT_CHANGE_PIN: service_script(change_pin_flow),
        SCRIPT_REPORT_LOSS: service_script(report_loss_flow),
        SCRIPT_CARD_STATUS: service_script(card_status_flow),
        SCRIPT_ECHO: echo,
    }
)

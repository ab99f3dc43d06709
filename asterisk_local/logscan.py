"""What Asterisk's start-up log says about the configuration it loaded."""

from __future__ import annotations

import re

# Asterisk's start-up log: an error, or a warning from the code that reads the configuration,
# means a broken configuration. (A clean start logs no warning at all; warnings from other
# code, which a newer Asterisk in Debian sid may add, are reported but do not stop it.)
_LOGGED = re.compile(r"\b(WARNING|ERROR)\[[^\]]*\](?:\[[^\]]*\])?: ([\w/]+)\.c:")
_CONFIG_CODE = re.compile(
    r"(^|/)(config\w*|pbx_config|app_queue|res_pjsip\w*|chan_pjsip|res_sorcery\w*"
    r"|res_musiconhold|loader|indications|features_config|res_agi|logger)$"
)
_ALWAYS = re.compile(r"parse error|Unable to load config|No such file")
# Known and harmless with this root folder.
_HARMLESS = (
    # Printed at start-up by Asterisk 22 itself, whatever stasis.conf says.
    "Could not find option 'minimum_size' with type 'threadpool'",
    "Unable to load config file 'stasis.conf'",
)


def config_problems(log_text: str) -> list[str]:
    """Log lines that show a configuration problem (empty when everything loaded)."""
    problems = []
    for line in log_text.splitlines():
        if any(h in line for h in _HARMLESS):
            continue
        logged = _LOGGED.search(line)
        if _ALWAYS.search(line) or (
            logged is not None
            and (logged.group(1) == "ERROR" or _CONFIG_CODE.search(logged.group(2)))
        ):
            problems.append(line)
    return problems


def other_warnings(log_text: str) -> list[str]:
    """Warnings that are not configuration problems (reported, not fatal)."""
    problems = set(config_problems(log_text))
    return [
        line
        for line in log_text.splitlines()
        if _LOGGED.search(line) and line not in problems and not any(h in line for h in _HARMLESS)
    ]

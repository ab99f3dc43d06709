"""Renders the project's Asterisk configuration for the compose network.

Run while the Asterisk image is built (see asterisk.Dockerfile); writes a file tree to copy
onto the image's root:

    OUT/etc/asterisk-compose/*.conf                     the rendered configuration
    OUT/usr/share/asterisk/moh-ivr12333/...             the hold music

It uses the same templates and renderer as `ivr12333 asterisk up` (dialplan.render), with
these differences for the containers:

- FastAGI servers are the compose services agi1 and agi2, tried in turn;
- no agent phones are built in: the loopback-only test phones of the local setup make no
  sense in a container. The operator's agents, like the carrier trunk, come from the site
  folder mounted at /etc/asterisk-compose/site (files included with #tryinclude, so a
  missing file is not an error);
- the loopback test transport moves to port 5070, leaving 5060 to the site's public
  transport (both on 5060 would clash);
- RTP is limited to the range compose publishes;
- Asterisk logs to its console only (docker logs keeps and rotates it), plus queue_log.

Office hours and the holiday calendar are read from IVR_OFFICE_HOURS and IVR_TIMEZONE at
build time, for this year and the next (chinese_calendar): rebuild the image every year.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.settings import Settings, get_settings
from dialplan import moh, render
from dialplan.render import Setup

INSTANCE = "compose"
AGI_SERVERS = ("agi1:4573", "agi2:4573")
LOOPBACK_SIP_PORT = 5070
# Must match the range compose.yaml publishes for the asterisk service.
RTP_START = 10000
RTP_END = 10199
SITE_DIR = "site"
SITE_PJSIP = f"{SITE_DIR}/pjsip_site.conf"
SITE_MEMBERS = f"{SITE_DIR}/queue_members.conf"
SITE_EXTENSIONS = f"{SITE_DIR}/extensions_site.conf"
ETC_DIR = f"etc/asterisk-{INSTANCE}"
MOH_FILE = "usr/share/asterisk/moh-ivr12333/ivr12333-tune.sln"

LOGGER_CONF = """\
; Containers: Asterisk's console output is the container log (docker logs); no log files
; to fill the container's disk. DTMF is not logged: callers type PINs.
[general]
dateformat = %F %T.%3q
queue_log = yes

[logfiles]
console => notice,warning,error,verbose
"""

RTP_CONF = f"""\
; Media ports: the range compose.yaml publishes (two ports a call leg: RTP and RTCP).
[general]
rtpstart = {RTP_START}
rtpend = {RTP_END}
"""

PJSIP_SITE = f"""
; --- Site (containers) ---------------------------------------------------------------------
; The carrier trunk, the public transport and the agents' phones, from the operator's site
; folder mounted into the container (see docker/site.example/ and docker/README.md).
#tryinclude {SITE_PJSIP}
"""

QUEUE_SITE = f"""
; Agents' phones as queue members (`member => PJSIP/agent1,0,agent1`), from the site folder.
#tryinclude {SITE_MEMBERS}
"""

EXTENSIONS_SITE = f"""
; Site additions to the dialplan, e.g. other FastAGI servers than agi1 and agi2 when the
; containers do not share a compose network (host networking):
;   [globals](+)
;   IVR_AGI_SERVERS = 10.0.0.5:4573&10.0.0.6:4573
#tryinclude {SITE_EXTENSIONS}
"""


def compose_setup() -> Setup:
    return Setup(
        agi_servers=AGI_SERVERS,
        sip_port=LOOPBACK_SIP_PORT,
        agents=(),
        instance=INSTANCE,
    )


def build_files(settings: Settings | None = None) -> dict[str, str]:
    """File name -> text of every configuration file of the container's Asterisk."""
    files = render.render(compose_setup(), settings or get_settings())
    files["pjsip.conf"] = files["pjsip.conf"].rstrip("\n") + "\n" + PJSIP_SITE
    # @MEMBERS@ is the last thing in queues.conf, so the include lands in the agent queue.
    files["queues.conf"] = files["queues.conf"].rstrip("\n") + "\n" + QUEUE_SITE
    files["extensions.conf"] = files["extensions.conf"].rstrip("\n") + "\n" + EXTENSIONS_SITE
    files["logger.conf"] = LOGGER_CONF
    files["rtp.conf"] = RTP_CONF
    return files


def write_tree(out: Path, settings: Settings | None = None) -> list[Path]:
    """Writes the configuration and hold music under `out`; returns the files written."""
    written = []
    etc = out / ETC_DIR
    etc.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(build_files(settings).items()):
        path = etc / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (etc / SITE_DIR).mkdir(exist_ok=True)
    tune = out / MOH_FILE
    tune.parent.mkdir(parents=True, exist_ok=True)
    tune.write_bytes(moh.tune_sln())
    written.append(tune)
    for path in written:
        os.chmod(path, 0o644)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the file tree into")
    args = parser.parse_args(argv)
    out: Path = args.out
    written = write_tree(out)
    print(f"{out}: {len(written)} files for Asterisk instance {INSTANCE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-asterisk --audio`'s pieces that need no Asterisk: the scenario and the call's
stream keep the key plan's timing, keys reach only the private pcap, and SIPp's own count of
failed calls is read right."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from asterisk_local.caller import DEFAULT_TONE_MS, key_group_ms, parse_keys
from bench.asterisk_load import (
    AUDIO_TAIL_MS,
    KEY_PLAN,
    _audio_scenario,
    _call_command,
    _call_keys,
    _scenario,
    _write_call_pcap,
    sipp_failed_calls,
)
from bench.flow import FlowCard
from bench.rtp_pcap import PACKET_MS
from tests.bench.test_rtp_pcap import _events, _read_pcap

CARD = FlowCard(
    card_number="12345678",
    id_number="11010519491231002X",
    pin="384729",
    pins=("384729", "591736"),
)

# The end of SIPp 3.6.1's output after a call still in progress at -timeout: neither
# successful nor failed in its counters.
TIMED_OUT = """\
  Successful call        |        0                  |        0
  Failed call            |        0                  |        0
-------------------------+---------------------------+--------------------------
"""
TWO_OF_THREE = """\
  Successful call        |        1                  |        1
  Failed call            |        0                  |        0
  Successful call        |        1                  |        2
  Failed call            |        1                  |        1
"""


def _waits_ms(scenario: str) -> int:
    return sum(int(ms) for ms in re.findall(r'<recv request="BYE" timeout="(\d+)"', scenario))


def test_audio_scenario_lasts_as_the_key_plan() -> None:
    """The audio scenario sends no key events itself, plays the pcap named on the command
    line, and waits exactly as long as the key-events scenario does."""
    audio, events = _audio_scenario(), _scenario()
    assert "play_dtmf" not in audio
    assert audio.count('play_pcap_audio="[pcap]"') == 1
    assert audio.index("play_pcap_audio") < audio.index('<recv request="BYE"')
    assert _waits_ms(audio) == _waits_ms(events)
    steps = parse_keys(KEY_PLAN)
    assert _waits_ms(audio) == sum(
        key_group_ms(s.keys, DEFAULT_TONE_MS) if s.keys else round(s.seconds * 1000) for s in steps
    )


def test_call_keys_are_the_cards_own() -> None:
    """Each placeholder of the plan becomes the card's own keys, the new PIN twice."""
    keys = _call_keys(CARD, "591736").split()
    groups = [k for k in keys if not k.startswith("wait:")]
    assert groups == ["2", "12345678#", "384729#", "11010519491231002*#", "591736#", "591736#"]
    assert [k for k in keys if k.startswith("wait:")] == [
        k for k in KEY_PLAN.split() if k.startswith("wait:")
    ]


def test_keys_go_to_a_private_pcap_not_the_command_line(tmp_path: Path) -> None:
    """The pcap is 0600, lasts the plan plus the tail, and holds the card's keys in order
    as events; SIPp's argv holds its path only."""
    pcap = tmp_path / "call-0.pcap"
    _write_call_pcap(pcap, CARD, "591736")
    assert pcap.stat().st_mode & 0o777 == 0o600
    packets = _read_pcap(pcap)
    assert len(packets) == (_waits_ms(_audio_scenario()) + AUDIO_TAIL_MS) // PACKET_MS
    codes = "".join("0123456789*#"[run[0].payload[0]] for run in _events(packets))
    assert codes == "2" + "12345678#" + "384729#" + "11010519491231002*#" + "591736#" * 2
    command = " ".join(_call_command(5060, tmp_path / "s.xml", pcap, (40000, 40002)))
    for secret in ("384729", "591736", "12345678", "11010519491231002"):
        assert secret not in command
    assert str(pcap) in command


def test_sipp_failed_calls_counts_what_sipp_did_not_call_successful() -> None:
    """A call still running at SIPp's -timeout is failed although SIPp's "Failed call"
    says 0; the last screen counts; with no screen, the exit code decides."""
    assert sipp_failed_calls(TIMED_OUT, 1, 255) == 1
    assert sipp_failed_calls(TWO_OF_THREE, 3, 1) == 1
    assert sipp_failed_calls("", 3, 0) == 0
    assert sipp_failed_calls("", 3, 255) == 3


def test_peak_calls_from_the_servers_call_lines(tmp_path: Path) -> None:
    """The most calls in progress at once, from each ended call's end time and length:
    three calls of which two overlap, one ended before the step (not counted), and lines
    that are not a call's end skipped."""
    import json as json_

    from bench.asterisk_load import peak_calls

    def line(event: str, end: str, seconds: float | None) -> str:
        fields: dict[str, object] = {"event": event, "timestamp": end}
        if seconds is not None:
            fields["seconds"] = seconds
        return json_.dumps(fields)

    log = tmp_path / "fastagi.log"
    log.write_text(
        "\n".join(
            [
                line("call.hung_up", "2026-12-02T01:00:10Z", 10.0),  # 01:00:00 - 01:00:10
                line("call.completed", "2026-12-02T01:00:12Z", 4.0),  # 01:00:08 - 01:00:12
                line("call.completed", "2026-12-02T01:00:30Z", 5.0),  # 01:00:25 - 01:00:30
                line("call.completed", "2026-12-02T00:59:00Z", 50.0),  # before the step
                line("audit", "2026-12-02T01:00:11Z", None),
                "not json",
            ]
        )
    )
    since = datetime.datetime(2026, 12, 2, 1, 0, tzinfo=datetime.UTC).timestamp()
    assert peak_calls(log, since) == 2

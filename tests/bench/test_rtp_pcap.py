"""The caller's pcap for `make bench-asterisk --audio`, read back from the file: one RTP stream
as a phone sends it, audio with each key's RFC 4733 events in place of its audio packets. A
wrong stream would make Asterisk hear other keys, and the bench would blame the IVR."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from asterisk_local.caller import key_group_ms, parse_keys
from bench.rtp_pcap import (
    PCMU,
    SAMPLES_PER_PACKET,
    TELEPHONE_EVENT,
    KeyPress,
    RtpPacket,
    key_presses,
    rtp_stream,
    write_pcap,
)

TONE_MS = 150
TONE_PACKETS = 8  # ceil(150 / 20)
END_REPEATS = 3  # RFC 4733 section 2.5.1.4: the end packet is sent three times


@dataclass(frozen=True)
class Read:
    at_us: int
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    src_port: int
    dst_port: int


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _read_pcap(path: Path) -> list[Read]:
    """Parses the file as libpcap, Ethernet, IPv4, UDP and RTP, checking every checksum."""
    data = path.read_bytes()
    magic, major, minor, _, _, snaplen, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1)
    packets = []
    offset = 24
    while offset < len(data):
        seconds, micros, caplen, length = struct.unpack_from("<IIII", data, offset)
        assert caplen == length <= snaplen
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        assert frame[12:14] == b"\x08\x00"
        ip = frame[14:34]
        assert ip[0] == 0x45 and ip[9] == 17
        assert _ones_complement_sum(ip) == 0xFFFF, "IPv4 header checksum"
        assert struct.unpack("!H", ip[2:4])[0] == len(frame) - 14
        udp = frame[34:]
        src, dst, udp_len, _ = struct.unpack_from("!HHHH", udp)
        assert udp_len == len(udp)
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, udp_len)
        assert _ones_complement_sum(pseudo + udp) == 0xFFFF, "UDP checksum"
        first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", udp, 8)
        assert first == 0x80, "RTP version 2, no padding, extension or CSRC"
        packets.append(
            Read(
                at_us=seconds * 1_000_000 + micros,
                payload_type=second & 0x7F,
                marker=bool(second & 0x80),
                sequence=sequence,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=udp[20:],
                src_port=src,
                dst_port=dst,
            )
        )
    return packets


def _events(packets: list[Read]) -> list[list[Read]]:
    """Runs of consecutive event packets with one RTP timestamp: one key each."""
    runs: list[list[Read]] = []
    for packet in packets:
        if packet.payload_type != TELEPHONE_EVENT:
            continue
        if runs and runs[-1][-1].timestamp == packet.timestamp:
            runs[-1].append(packet)
        else:
            runs.append([packet])
    return runs


def _stream(presses: list[KeyPress], duration_ms: int) -> list[RtpPacket]:
    # Sequence numbers and timestamps start near their wrap, to see it handled.
    return rtp_stream(
        presses,
        duration_ms,
        TONE_MS,
        ssrc=0x1234ABCD,
        first_sequence=65500,
        first_timestamp=0xFFFFF000,
    )


def _written(tmp_path: Path, presses: list[KeyPress], duration_ms: int) -> list[Read]:
    path = tmp_path / "call.pcap"
    write_pcap(path, _stream(presses, duration_ms))
    return _read_pcap(path)


def test_one_stream_continuous_sequence_and_clock(tmp_path: Path) -> None:
    """One packet every 20 ms, one SSRC, sequence numbers and audio timestamps continuous
    across their wrap; events carry the clock of their start."""
    presses = [KeyPress(1000, "5"), KeyPress(1300, "#")]
    packets = _written(tmp_path, presses, 3000)
    assert len(packets) == 150
    assert [p.at_us for p in packets] == [n * 20_000 for n in range(150)]
    assert {p.ssrc for p in packets} == {0x1234ABCD}
    assert {(p.src_port, p.dst_port) for p in packets} == {(40000, 40002)}
    assert [p.sequence for p in packets] == [(65500 + n) % 65536 for n in range(150)]
    for n, packet in enumerate(packets):
        if packet.payload_type == PCMU:
            assert packet.timestamp == (0xFFFFF000 + n * SAMPLES_PER_PACKET) % 2**32
            assert len(packet.payload) == SAMPLES_PER_PACKET
    starts = [run[0] for run in _events(packets)]
    assert [(p.at_us, p.timestamp) for p in starts] == [
        (1_000_000, (0xFFFFF000 + 50 * SAMPLES_PER_PACKET) % 2**32),
        (1_300_000, (0xFFFFF000 + 65 * SAMPLES_PER_PACKET) % 2**32),
    ]
    audio_markers = [n for n, p in enumerate(packets) if p.payload_type == PCMU and p.marker]
    assert audio_markers == [0]
    assert {p.payload_type for p in packets} == {PCMU, TELEPHONE_EVENT}


def test_each_key_is_one_event_with_growing_duration_and_three_ends(tmp_path: Path) -> None:
    """Every key: the marker on its first packet only, durations 160, 320, ... up to the
    tone, then the end packet (E bit) three times with the tone's duration; audio between."""
    keys = "0123456789*#"
    presses = [KeyPress(400 + 300 * n, key) for n, key in enumerate(keys)]
    packets = _written(tmp_path, presses, 4400)
    runs = _events(packets)
    assert len(runs) == len(keys)
    codes = []
    for run in runs:
        fields = [struct.unpack("!BBH", p.payload) for p in run]
        assert len(run) == TONE_PACKETS - 1 + END_REPEATS
        assert [p.marker for p in run] == [True] + [False] * (len(run) - 1)
        assert len({code for code, _, _ in fields}) == 1
        ends = [bool(flags & 0x80) for _, flags, _ in fields]
        assert ends == [False] * (TONE_PACKETS - 1) + [True] * END_REPEATS
        assert {flags & 0x3F for _, flags, _ in fields} == {10}
        durations = [duration for _, _, duration in fields]
        growing = [SAMPLES_PER_PACKET * (n + 1) for n in range(TONE_PACKETS)]
        assert durations == growing + [growing[-1]] * (END_REPEATS - 1)
        codes.append(fields[0][0])
        # In place of audio: the next sequence number after the run is audio again.
        after = packets.index(run[-1]) + 1
        assert packets[after].payload_type == PCMU
    assert codes == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_key_timings_follow_the_scenario_plan() -> None:
    """Keys start where SIPp's play_dtmf would start them (400 ms filler, then a key every
    two tone lengths), each group after the waits and the groups before it."""
    steps = parse_keys("wait:8 2 wait:2 12# wait:1")
    presses, total = key_presses(steps, TONE_MS)
    group_2 = key_group_ms("2", TONE_MS)
    second = 8000 + group_2 + 2000
    assert presses == [
        KeyPress(8000 + 400 + 300, "2"),
        KeyPress(second + 400 + 300, "1"),
        KeyPress(second + 400 + 600, "2"),
        KeyPress(second + 400 + 900, "#"),
    ]
    assert total == second + key_group_ms("12#", TONE_MS) + 1000


def test_bench_plan_fits_its_call(tmp_path: Path) -> None:
    """The bench's own plan (20 key presses) becomes 20 events in a stream that lasts the
    whole call."""
    from bench.asterisk_load import KEY_PLAN

    presses, total = key_presses(parse_keys(KEY_PLAN), TONE_MS)
    packets = _written(tmp_path, presses, total)
    assert len(_events(packets)) == len(presses) == 1 + 9 + 7 + 19 + 7 + 7
    assert len(packets) == total // 20


def test_overlapping_or_unknown_keys_are_refused() -> None:
    """Two presses closer than a key's packets, a press past the end, or a key with no
    RFC 4733 event are errors, not a silently wrong stream."""
    assert len(_stream([KeyPress(0, "1"), KeyPress(200, "2")], 1000)) == 50
    with pytest.raises(ValueError, match="overlaps"):
        _stream([KeyPress(0, "1"), KeyPress(180, "2")], 1000)
    with pytest.raises(ValueError, match="overlaps"):
        _stream([KeyPress(900, "1")], 1000)
    with pytest.raises(ValueError, match="no RFC 4733 event"):
        _stream([KeyPress(0, "x")], 1000)


def test_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    """The stream holds PINs: the file is the owner's only, and an existing file (someone
    else's, or a link) is not written through."""
    path = tmp_path / "call.pcap"
    packets = _stream([], 100)
    write_pcap(path, packets)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_pcap(path, packets)

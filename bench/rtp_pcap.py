"""A caller's RTP stream as a pcap file, audio and key events in one stream, as a phone sends.

SIPp plays it with `<exec play_pcap_audio=...>`. SIPp's own `rtp_stream` audio next to its
`play_dtmf` events makes two RTP streams from one port (two SSRCs, two sequences and clocks),
and Asterisk then hears keys that were never pressed. A phone sends one stream: a 20 ms
G.711 mu-law packet (payload type 0) every 20 ms, and while a key is held, RFC 4733 event
packets (payload type 96, as the caller's SDP offers) in place of the audio ones: the same
SSRC and the same sequence, the event's RTP timestamp fixed at its start, its duration
growing, the marker bit on its first packet, and the end packet (E bit) sent three times.

The file is classic libpcap (Ethernet, IPv4, UDP), written with `struct`; SIPp reads only
the UDP part and sets the ports and addresses of the call. A stream holds the caller's
keys, PINs among them: callers write it to a private file (`write_pcap` makes it 0600).
"""

from __future__ import annotations

import math
import os
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asterisk_local.caller import Step, key_group_ms

SAMPLE_RATE = 8000
PACKET_MS = 20
SAMPLES_PER_PACKET = SAMPLE_RATE * PACKET_MS // 1000
PCMU = 0
# SIPp's play_dtmf uses 96 whatever the SDP says; the caller's SDP offers 96 for events.
TELEPHONE_EVENT = 96
END_REPEATS = 3
# RFC 4733 section 3.2: DTMF events 0-9, * = 10, # = 11, A-D = 12-15.
EVENT_CODES = {
    **{str(digit): digit for digit in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
# The tone's level field: -10 dBm0, a phone's usual.
EVENT_VOLUME = 10

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # DLT_EN10MB
_ETHERNET = bytes.fromhex("020000000002020000000001") + struct.pack("!H", 0x0800)
_LOOPBACK = bytes([127, 0, 0, 1])


@dataclass(frozen=True)
class KeyPress:
    """A key held from `at_ms` (from the stream's start) for the tone's length."""

    at_ms: int
    key: str


@dataclass(frozen=True)
class RtpPacket:
    at_ms: int
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes

    def encode(self) -> bytes:
        """The RTP header (version 2, no padding, extension or CSRC) and the payload."""
        second = (0x80 if self.marker else 0) | self.payload_type
        header = struct.pack("!BBHII", 0x80, second, self.sequence, self.timestamp, self.ssrc)
        return header + self.payload


def mu_law(sample: int) -> int:
    """One 16-bit linear sample as a G.711 mu-law byte."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def quiet_noise(seconds: float = 1.0, level: int = 600, seed: int = 12333) -> bytes:
    """Mu-law quiet noise, as a phone's microphone sends between words."""
    rng = random.Random(seed)
    return bytes(mu_law(rng.randint(-level, level)) for _ in range(round(SAMPLE_RATE * seconds)))


def event_payload(code: int, end: bool, duration: int) -> bytes:
    """An RFC 4733 event: code, E bit and volume, duration in samples."""
    return struct.pack("!BBH", code, (0x80 if end else 0) | EVENT_VOLUME, duration)


def event_slots(tone_ms: int) -> int:
    """20 ms packets a key takes: the tone's (growing duration), then the 2 repeated ends."""
    return math.ceil(tone_ms / PACKET_MS) + END_REPEATS - 1


def key_presses(steps: Sequence[Step], tone_ms: int) -> tuple[list[KeyPress], int]:
    """When each key starts, as SIPp's `play_dtmf` would start it, and the plan's length.

    Times count from the first step. The scenario waits `key_group_ms` after each key
    group; SIPp's `play_dtmf` sends 400 ms of filler, then a key every two tone lengths,
    the first after two tone lengths: those are the key timings Asterisk recognised.
    """
    presses = []
    now = 0
    for step in steps:
        if step.keys:
            for index, key in enumerate(step.keys):
                presses.append(KeyPress(now + 400 + (index + 1) * 2 * tone_ms, key))
            now += key_group_ms(step.keys, tone_ms)
        else:
            now += round(step.seconds * 1000)
    return presses, now


def rtp_stream(
    presses: Sequence[KeyPress],
    duration_ms: int,
    tone_ms: int,
    *,
    ssrc: int,
    first_sequence: int,
    first_timestamp: int,
    noise: bytes | None = None,
) -> list[RtpPacket]:
    """One packet every 20 ms for `duration_ms`: audio, or a key's events while it is held.

    A key's tone is `ceil(tone_ms / 20)` packets, durations 160, 320, ...; its last packet
    has the E bit and is sent three times in all (in the next two 20 ms slots). A press
    starts at the slot nearest its time; presses that would overlap are refused.
    """
    audio = noise if noise is not None else quiet_noise()
    loop = len(audio) // SAMPLES_PER_PACKET
    if loop == 0:
        raise ValueError("the noise is shorter than one packet")
    tone_packets = math.ceil(tone_ms / PACKET_MS)
    slots = math.ceil(duration_ms / PACKET_MS)
    # slot -> (event code, index within the event, the event's first slot)
    events: dict[int, tuple[int, int, int]] = {}
    for press in presses:
        if press.key not in EVENT_CODES:
            raise ValueError(f"no RFC 4733 event for key {press.key!r}")
        start = round(press.at_ms / PACKET_MS)
        taken = range(start, start + event_slots(tone_ms))
        if taken.stop > slots or any(slot in events for slot in taken):
            raise ValueError(f"a key press at {press.at_ms} ms overlaps another or the end")
        for index, slot in enumerate(taken):
            events[slot] = (EVENT_CODES[press.key], index, start)
    packets = []
    for slot in range(slots):
        event = events.get(slot)
        if event is None:
            offset = (slot % loop) * SAMPLES_PER_PACKET
            payload_type, at_sample = PCMU, slot * SAMPLES_PER_PACKET
            # The stream's start is a talkspurt's start.
            marker = slot == 0
            payload = audio[offset : offset + SAMPLES_PER_PACKET]
        else:
            code, index, start = event
            duration = min(index + 1, tone_packets) * SAMPLES_PER_PACKET
            payload_type, at_sample = TELEPHONE_EVENT, start * SAMPLES_PER_PACKET
            marker = index == 0
            payload = event_payload(code, index >= tone_packets - 1, duration)
        packets.append(
            RtpPacket(
                at_ms=slot * PACKET_MS,
                payload_type=payload_type,
                marker=marker,
                sequence=(first_sequence + slot) & 0xFFFF,
                timestamp=(first_timestamp + at_sample) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=payload,
            )
        )
    return packets


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of IP and UDP headers."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, src_port: int, dst_port: int, ident: int) -> bytes:
    length = 8 + len(rtp)
    pseudo = _LOOPBACK + _LOOPBACK + struct.pack("!BBH", 0, 17, length)
    udp = struct.pack("!HHHH", src_port, dst_port, length, 0) + rtp
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0, 64, 17, 0, _LOOPBACK, _LOOPBACK
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETHERNET + ip + udp


def write_pcap(
    path: Path, packets: Iterable[RtpPacket], *, src_port: int = 40000, dst_port: int = 40002
) -> None:
    """The packets as a new owner-only libpcap file, timed from 0 by their `at_ms`.

    SIPp replaces both ports (and the addresses) with the call's own when it plays it.
    """
    records = [_PCAP_HEADER]
    for ident, packet in enumerate(packets):
        frame = _frame(packet.encode(), src_port, dst_port, ident)
        seconds, ms = divmod(packet.at_ms, 1000)
        records.append(struct.pack("<IIII", seconds, ms * 1000, len(frame), len(frame)))
        records.append(frame)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(b"".join(records))

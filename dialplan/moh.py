"""Music on hold: a short, generated pentatonic tune.

Debian's Asterisk packages ship no hold music (the opsound packages are optional), and the
queue must never be silent, so the installer writes this one into the root folder.
"""

from __future__ import annotations

import math
from array import array

RATE = 8000  # .sln: 8 kHz, 16-bit signed linear, native byte order (little-endian here)

# Gong-shang-jiao-zhi-yu (C D E G A) around middle C, as (semitones above C4, beats).
_MELODY: tuple[tuple[int | None, float], ...] = (
    (0, 1), (2, 1), (4, 1), (7, 2), (4, 1), (2, 1), (0, 2),
    (9, 1), (7, 1), (4, 1), (2, 1), (4, 3), (None, 1),
    (7, 1), (9, 1), (12, 2), (9, 1), (7, 1), (4, 2),
    (2, 1), (4, 1), (2, 1), (0, 1), (0, 3), (None, 1),
)  # fmt: skip
_BEAT_S = 0.42
_LEVEL = 5000  # well below full scale: hold music should be quiet


def _note(semitones: int | None, beats: float) -> list[int]:
    n = int(RATE * _BEAT_S * beats)
    if semitones is None:
        return [0] * n
    freq = 261.63 * 2 ** (semitones / 12)
    attack, release = int(RATE * 0.02), int(RATE * 0.12)
    out = []
    for i in range(n):
        env = min(1.0, i / attack, (n - i) / release)
        # A little of the octave above makes it less of a test tone.
        phase = 2 * math.pi * freq * i / RATE
        out.append(int(_LEVEL * env * (0.8 * math.sin(phase) + 0.2 * math.sin(2 * phase))))
    return out


def tune_sln() -> bytes:
    """The tune as raw 8 kHz signed-linear samples, about 13 s, for a seamless loop."""
    samples = array("h")
    for semitones, beats in _MELODY:
        samples.extend(_note(semitones, beats))
    return samples.tobytes()

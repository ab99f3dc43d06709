"""Turn the prompt catalogue into the sound files Asterisk plays.

Each prompt comes from a recording in `prompts/recorded/<id>.<ext>` when there is one,
otherwise from espeak-ng's Mandarin voice as a stand-in. Either way pydub decodes it,
trims leading and trailing silence and brings it to one loudness so prompts played back
to back sound alike; sox resamples it. It is written in the formats Asterisk plays
without transcoding: 8 kHz signed linear (.sln), G.711 mu-law and A-law (.ulaw, .alaw)
and 16 kHz signed linear (.sln16).

A manifest beside the files records what each one was made from, so a rerun only
rebuilds prompts whose text or recording changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backend.settings import get_settings
from ivr.contract import SOUNDS_SUBDIR
from prompts.catalogue import render
from prompts.spoken import for_synthesis

with warnings.catch_warnings():
    # audioop (ours and pydub's) warns of its removal on 3.11 and 3.12 only; 3.13 on get
    # the audioop-lts package with the same API.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    from pydub import AudioSegment
    from pydub.silence import detect_leading_silence

# Bump when the processing below changes, so every prompt is rebuilt once.
PIPELINE_VERSION = 1

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"
LANGUAGE_DIR = "zh"
MANIFEST_NAME = ".build-manifest.json"

# The Mandarin voice whose Latin text is pinyin. Plain "cmn" in espeak-ng 1.51 (Debian 12)
# turns each character into pinyin and then reads that pinyin as English ("请" comes out
# as "king three"); espeak-ng issues #1028 and #1163.
ESPEAK_VOICE = "cmn-latn-pinyin"
# Brisk but clear (about 5 characters a second); every second is paid on every call.
ESPEAK_WORDS_PER_MINUTE = 220
TARGET_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0  # loudness gain stops short of clipping
SILENCE_DBFS = -45.0
SILENCE_CHUNK_MS = 5

NARROWBAND_RATE = 8000
WIDEBAND_RATE = 16000
FORMATS = ("sln", "ulaw", "alaw", "sln16")

# Files in the recorded folder that are not recordings.
_NOT_AUDIO = {".md", ".txt"}


class BuildError(Exception):
    """A prompt could not be made; the message names it."""


@dataclass(frozen=True)
class BuildReport:
    sound_dir: Path
    built: tuple[str, ...]
    skipped: tuple[str, ...]
    removed: tuple[str, ...]  # prompts no longer catalogued, files deleted
    recorded: tuple[str, ...]  # prompts taken from a recording instead of synthesis
    unknown_recordings: tuple[str, ...]  # recordings whose name is not a prompt id
    seconds: float


def default_out_dir() -> Path:
    return get_settings().data_dir / "sounds"


def sound_dir(out_dir: Path) -> Path:
    """Where the files land: Asterisk looks for `<lang>/ivr12333/<id>.<format>`."""
    return out_dir / LANGUAGE_DIR / SOUNDS_SUBDIR


def sound_files(directory: Path, prompt_id: str) -> dict[str, Path]:
    """The file of each format for one prompt inside `sound_dir(...)`."""
    return {fmt: directory / f"{prompt_id}.{fmt}" for fmt in FORMATS}


def find_recordings(recorded_dir: Path) -> dict[str, Path]:
    if not recorded_dir.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(recorded_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix not in _NOT_AUDIO:
            found[path.stem] = path
    return found


def _digest(text: str, recording: Path | None) -> str:
    source: dict[str, object] = {
        "pipeline": PIPELINE_VERSION,
        "target_dbfs": TARGET_DBFS,
        "formats": FORMATS,
    }
    if recording is None:
        source.update(voice=ESPEAK_VOICE, wpm=ESPEAK_WORDS_PER_MINUTE, text=text)
    else:
        source["recording"] = hashlib.sha256(recording.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


def _synthesise(text: str) -> AudioSegment:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise BuildError("espeak-ng is not installed (apt-get install espeak-ng)")
    result = subprocess.run(
        [
            espeak,
            "-v",
            ESPEAK_VOICE,
            "-s",
            str(ESPEAK_WORDS_PER_MINUTE),
            "--stdout",
            for_synthesis(text),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise BuildError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")
    return AudioSegment.from_wav(io.BytesIO(result.stdout))


def _trim(segment: AudioSegment) -> AudioSegment:
    lead = detect_leading_silence(segment, SILENCE_DBFS, SILENCE_CHUNK_MS)
    tail = detect_leading_silence(segment.reverse(), SILENCE_DBFS, SILENCE_CHUNK_MS)
    return segment[lead : max(lead, len(segment) - tail)]


def _even_loudness(segment: AudioSegment) -> AudioSegment:
    gain = min(TARGET_DBFS - segment.dBFS, PEAK_CEILING_DBFS - segment.max_dBFS)
    return segment.apply_gain(gain)


def _pcm(segment: AudioSegment, rate: int) -> bytes:
    """Resampled with sox: it filters before decimating (pydub's set_frame_rate does not,
    and the aliasing is audible at 8 kHz) and starts in milliseconds where ffmpeg takes
    about 150, which is most of a full build."""
    sox = shutil.which("sox")
    if sox is None:
        raise BuildError("sox is not installed (apt-get install sox)")

    def raw(sample_rate: int) -> list[str]:
        return ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(sample_rate)]

    # -D: no dither, so the same input always gives the same bytes.
    command = [sox, "-D", "-V1", *raw(segment.frame_rate), "-", *raw(rate), "-"]
    pcm: bytes = segment.raw_data
    result = subprocess.run(command, input=pcm, capture_output=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"sox failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def render_audio(text: str, recording: Path | None = None) -> dict[str, bytes]:
    """The bytes of every format for one prompt."""
    source = AudioSegment.from_file(recording) if recording else _synthesise(text)
    segment = _trim(source.set_channels(1).set_sample_width(2))
    if len(segment) == 0 or segment.rms == 0:
        raise BuildError("no audio above the silence threshold")
    segment = _even_loudness(segment)
    narrow = _pcm(segment, NARROWBAND_RATE)
    return {
        "sln": narrow,
        "ulaw": audioop.lin2ulaw(narrow, 2),
        "alaw": audioop.lin2alaw(narrow, 2),
        "sln16": _pcm(segment, WIDEBAND_RATE),
    }


def _write_atomically(path: Path, data: bytes) -> None:
    # Asterisk may be playing the old file; it must never see half a new one.
    # The process id in the name: two builds at once (a test run and `make cx`) never
    # write into each other's half-made file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _load_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict):
        return {}
    return {str(k): str(v) for k, v in prompts.items()}


def _save_manifest(path: Path, entries: Mapping[str, str]) -> None:
    body = json.dumps({"prompts": dict(sorted(entries.items()))}, indent=1, ensure_ascii=False)
    _write_atomically(path, body.encode())


def build(
    out_dir: Path | None = None,
    *,
    force: bool = False,
    jobs: int = 2,
    recorded_dir: Path | None = None,
    prompts: Mapping[str, str] | None = None,
) -> BuildReport:
    """Bring `<out_dir>/zh/ivr12333/` up to date with the catalogue.

    `out_dir` defaults to `<data_dir>/sounds`; `prompts` to the catalogue rendered from
    the current settings; `recorded_dir` to `prompts/recorded`.
    """
    started = time.monotonic()
    texts = dict(render() if prompts is None else prompts)
    target = sound_dir(out_dir or default_out_dir())
    target.mkdir(parents=True, exist_ok=True)
    recordings = find_recordings(RECORDED_DIR if recorded_dir is None else recorded_dir)
    manifest_path = target / MANIFEST_NAME
    previous = _load_manifest(manifest_path)

    wanted = {pid: _digest(text, recordings.get(pid)) for pid, text in texts.items()}
    stale = [
        pid
        for pid, digest in wanted.items()
        if force
        or previous.get(pid) != digest
        or not all(p.is_file() for p in sound_files(target, pid).values())
    ]

    removed = sorted(set(previous) - set(texts))
    for pid in removed:
        for path in sound_files(target, pid).values():
            path.unlink(missing_ok=True)

    done = {pid: digest for pid, digest in previous.items() if pid in texts and pid not in stale}

    def make(pid: str) -> str:
        try:
            audio = render_audio(texts[pid], recordings.get(pid))
        except BuildError as exc:
            raise BuildError(f"prompt {pid}: {exc}") from exc
        for fmt, path in sound_files(target, pid).items():
            _write_atomically(path, audio[fmt])
        return pid

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for pid in pool.map(make, stale):
                done[pid] = wanted[pid]
    finally:
        # Whatever finished is recorded, so a retry after a failure picks up from there.
        _save_manifest(manifest_path, done)

    return BuildReport(
        sound_dir=target,
        built=tuple(stale),
        skipped=tuple(pid for pid in texts if pid not in stale),
        removed=tuple(removed),
        recorded=tuple(pid for pid in texts if pid in recordings),
        unknown_recordings=tuple(sorted(set(recordings) - set(texts))),
        seconds=time.monotonic() - started,
    )

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Sine
from pydub.silence import detect_leading_silence

from backend.settings import reset_settings
from cli.main import main
from prompts.build import (
    FORMATS,
    RECORDED_DIR,
    SILENCE_DBFS,
    TARGET_DBFS,
    BuildReport,
    build,
    find_recordings,
    sound_dir,
    sound_files,
)
from prompts.catalogue import PROMPTS, render
from tests.prompts.conftest import sounds_out

NARROW_BYTES_PER_SECOND = 8000 * 2


def _sln(path: Path, rate: int = 8000) -> AudioSegment:
    return AudioSegment(data=path.read_bytes(), sample_width=2, frame_rate=rate, channels=1)


def test_every_prompt_in_every_format(full_build: BuildReport) -> None:
    assert set(full_build.built) == set(PROMPTS)
    for prompt_id in PROMPTS:
        files = sound_files(full_build.sound_dir, prompt_id)
        assert set(files) == set(FORMATS)
        sizes = {fmt: path.stat().st_size for fmt, path in files.items()}
        samples = sizes["sln"] // 2
        assert sizes["sln"] % 2 == 0 and sizes["sln16"] % 2 == 0, prompt_id
        # Shortest is a single digit, longest the office hours; both well inside this.
        assert 0.1 < sizes["sln"] / NARROW_BYTES_PER_SECOND < 30, prompt_id
        assert sizes["ulaw"] == sizes["alaw"] == samples, prompt_id
        # Resampling may round the length by a sample or two.
        assert abs(sizes["sln16"] // 2 - 2 * samples) <= 4, prompt_id


def test_sound_dir_is_where_asterisk_looks(full_build: BuildReport) -> None:
    assert full_build.sound_dir.parts[-2:] == ("zh", "ivr12333")


def test_audio_is_loud_enough_and_evened(full_build: BuildReport) -> None:
    for prompt_id in PROMPTS:
        audio = _sln(sound_files(full_build.sound_dir, prompt_id)["sln"])
        assert audio.rms > 0, prompt_id
        # Loudness gain stops short of clipping, so a peaky prompt may end up quieter.
        assert TARGET_DBFS - 6 < audio.dBFS < TARGET_DBFS + 1.5, (prompt_id, audio.dBFS)
        assert audio.max_dBFS < 0, prompt_id


def test_silence_is_trimmed(full_build: BuildReport) -> None:
    for prompt_id in PROMPTS:
        audio = _sln(sound_files(full_build.sound_dir, prompt_id)["sln"])
        lead = detect_leading_silence(audio, SILENCE_DBFS, 5)
        tail = detect_leading_silence(audio.reverse(), SILENCE_DBFS, 5)
        assert lead <= 20 and tail <= 20, (prompt_id, lead, tail)


def test_companding_matches_the_linear_file(full_build: BuildReport) -> None:
    import audioop

    files = sound_files(full_build.sound_dir, "welcome")
    linear = files["sln"].read_bytes()
    assert audioop.ulaw2lin(files["ulaw"].read_bytes(), 2) == audioop.ulaw2lin(
        audioop.lin2ulaw(linear, 2), 2
    )
    decoded = audioop.alaw2lin(files["alaw"].read_bytes(), 2)
    assert audioop.rms(decoded, 2) == pytest.approx(audioop.rms(linear, 2), rel=0.05)


def test_rebuild_skips_unchanged(full_build: BuildReport) -> None:
    welcome = sound_files(full_build.sound_dir, "welcome")["sln"]
    before = welcome.stat().st_mtime_ns
    again = build(sounds_out(full_build), recorded_dir=full_build.sound_dir / "none")
    assert again.built == ()
    assert set(again.skipped) == set(PROMPTS)
    assert welcome.stat().st_mtime_ns == before
    assert again.seconds < 2


def test_cli_build(full_build: BuildReport, capsys: pytest.CaptureFixture[str]) -> None:
    # Only prompts with a recording in the repository's folder differ from the session build.
    recorded = set(find_recordings(RECORDED_DIR)) & set(PROMPTS)
    assert main(["prompts", "build", "--out", str(sounds_out(full_build))]) == 0
    assert f"{len(recorded)} built, {len(PROMPTS) - len(recorded)} unchanged" in (
        capsys.readouterr().out
    )


def _tone_recording(path: Path) -> None:
    # Stereo 44.1 kHz with silence either side, unlike anything the synthesiser makes.
    tone = Sine(440).to_audio_segment(duration=700, volume=-6).set_frame_rate(44100)
    padded = AudioSegment.silent(400, 44100) + tone + AudioSegment.silent(600, 44100)
    padded.set_channels(2).export(path, format="wav")


def test_recording_replaces_synthesis(tmp_path: Path) -> None:
    texts = {pid: PROMPTS[pid] for pid in ("welcome", "goodbye")}
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "README.md").write_text("not audio")
    _tone_recording(recorded / "welcome.wav")
    _tone_recording(recorded / "welcom.wav")  # misspelt: reported, not used

    report = build(tmp_path / "out", prompts=texts, recorded_dir=recorded)
    assert report.recorded == ("welcome",)
    assert report.unknown_recordings == ("welcom",)
    files = sound_files(report.sound_dir, "welcome")
    audio = _sln(files["sln"])
    # The tone alone survives trimming; the synthetic greeting lasts seconds.
    assert 650 < len(audio) < 750
    assert abs(audio.dBFS - TARGET_DBFS) < 1
    assert files["ulaw"].stat().st_size == files["sln"].stat().st_size // 2

    (recorded / "welcome.wav").unlink()
    report = build(tmp_path / "out", prompts=texts, recorded_dir=recorded)
    assert report.built == ("welcome",)
    assert len(_sln(files["sln"])) > 1500


def test_changed_and_removed_prompts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    none = tmp_path / "none"
    first = build(
        out, prompts={"goodbye": "再见。", "no-input": "没有收到按键。"}, recorded_dir=none
    )
    assert sorted(first.built) == ["goodbye", "no-input"]

    second = build(out, prompts={"goodbye": "感谢来电，再见。"}, recorded_dir=none)
    assert second.built == ("goodbye",)
    assert second.removed == ("no-input",)
    assert not any(p.exists() for p in sound_files(sound_dir(out), "no-input").values())

    # A file deleted by hand is made again even though the manifest lists it.
    sound_files(sound_dir(out), "goodbye")["alaw"].unlink()
    assert build(out, prompts={"goodbye": "感谢来电，再见。"}, recorded_dir=none).built == (
        "goodbye",
    )


def test_templates_are_built_from_the_settings(
    tmp_path: Path, fresh_settings: pytest.MonkeyPatch
) -> None:
    fresh_settings.setenv("IVR_DATA_DIR", str(tmp_path))
    reset_settings()
    none = tmp_path / "none"
    texts = {"agent-hours": render()["agent-hours"]}
    build(prompts=texts, recorded_dir=none)
    files = sound_files(sound_dir(tmp_path / "sounds"), "agent-hours")
    first = files["sln"].read_bytes()
    assert len(first) > 0

    fresh_settings.setenv("IVR_OFFICE_HOURS", "08:00-12:00")
    reset_settings()
    report = build(recorded_dir=none, prompts={"agent-hours": PROMPTS["agent-hours"]})
    assert report.built == ("agent-hours",)
    assert files["sln"].read_bytes() != first


def test_default_out_dir_follows_data_dir(
    tmp_path: Path, fresh_settings: pytest.MonkeyPatch
) -> None:
    fresh_settings.setenv("IVR_DATA_DIR", str(tmp_path))
    reset_settings()
    report = build(prompts={"goodbye": "再见。"}, recorded_dir=tmp_path / "none")
    assert report.sound_dir == tmp_path / "sounds" / "zh" / "ivr12333"
    assert os.path.isfile(report.sound_dir / "goodbye.sln16")

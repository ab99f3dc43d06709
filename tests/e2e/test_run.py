"""`ivr12333 run` (what `make run` does) brings the whole service up, serves a real call
placed with `ivr12333 call`, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asterisk_local import instance as local
from backend.demo import DEMO_CARDS
from console import queue
from tests import sip_phones
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

IVR12333 = str(ROOT / ".venv" / "bin" / "ivr12333")


def _free_pair() -> int:
    """A TCP port whose successor is free too (the two FastAGI servers)."""
    while True:
        port = sip_phones.free_tcp_port()
        if port < 65535:
            try:
                import socket

                with socket.create_server(("127.0.0.1", port + 1)):
                    return port
            except OSError:
                continue


def process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`: only ours, whatever else runs
    on the machine (another checkout's servers look the same to pgrep)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def test_run_serves_a_call_and_stops_cleanly(database_url: str, tmp_path: Path) -> None:
    """Up with demo data, a SIPp call changes demo card A10000001's PIN and is counted as
    served at the metrics address printed; the queue reads empty; SIGTERM stops all."""
    if os.geteuid() != 0:
        pytest.skip("Asterisk runs in a chroot: needs root")
    demo = DEMO_CARDS[0]
    assert demo.pin is None  # on the initial PIN
    sip_port = sip_phones.free_udp_port()
    instance = f"run-{os.getpid()}"
    env = {
        **os.environ,
        "IVR_DATABASE_URL": database_url,
        "IVR_AGI_PORT": str(_free_pair()),
        "IVR_CONSOLE_PORT": str(sip_phones.free_tcp_port()),
        "IVR_LOG_FILE": str(tmp_path / "run.log"),
    }
    env.pop("IVR_NOW_OVERRIDE", None)
    out = (tmp_path / "stdout").open("w")
    # A process group of its own: the servers it starts are in it, and nothing else.
    proc = subprocess.Popen(
        [IVR12333, "run", "--sip-port", str(sip_port), "--instance", instance],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600  # the first run builds Asterisk's root folder
        while "hotline is up" not in (tmp_path / "stdout").read_text():
            assert proc.poll() is None, (tmp_path / "stdout").read_text()
            assert time.monotonic() < deadline, "ivr12333 run did not come up"
            time.sleep(1)
        started = process_group(proc.pid)
        assert len(started) >= 4, started  # run, two FastAGI servers, the console
        digits = "".join(c for c in demo.card_number if c.isdigit())
        keys = (
            f"wait:6 2 wait:2 {digits}# wait:2 123456# wait:2 "
            f"{demo.id_number.replace('X', '*')}# wait:2 384729# wait:2 384729# wait:6"
        )
        call = subprocess.run(
            [IVR12333, "call", "12333", "--sip-port", str(sip_port), "--keys", "-"],
            input=keys,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert call.returncode == 0, call.stderr
        assert "answered" in call.stdout and "ended by caller" in call.stdout, call.stdout
        shown = subprocess.run(
            [IVR12333, "cards", "show", demo.card_number, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert '"pin_is_initial": false' in shown.stdout
        # Where the wallboard and the metrics are, as printed; the call counted by its server.
        printed = (tmp_path / "stdout").read_text()
        console = f"http://127.0.0.1:{env['IVR_CONSOLE_PORT']}"
        assert f"Wallboard (log in as super1):  {console}/supervisor/wallboard" in printed
        urls = re.search(r"Metrics for Prometheus:  (.+)", printed)
        assert urls, printed
        served = 0.0
        for url in urls.group(1).split():
            exposition = httpx.get(url, timeout=5).text
            assert httpx.get(url.replace("/metrics", "/readyz"), timeout=5).text == "ready\n"
            for family in text_string_to_metric_families(exposition):
                for sample in family.samples:
                    if sample.name == "ivr12333_calls_total" and sample.labels == {
                        "script": "main",
                        "outcome": "served",
                    }:
                        served += sample.value
        assert served == 1
        # The queue as the wallboard reads it from this Asterisk: nobody waiting.
        assert queue._read(instance) == queue.QueueFigures(0, 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    assert code == 0, (tmp_path / "stdout").read_text()
    assert local.status(instance) is None
    assert process_group(proc.pid) == []
    assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
    # Asterisk runs in a session of its own; its configuration folder names this instance.
    leftovers = subprocess.run(
        ["pgrep", "-f", f"asterisk-{instance}/"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""

"""`ivr12333 run` (what `make run` does): the whole service on this machine.

PostgreSQL, migrations, demo cards, prompts, two FastAGI servers, the staff console and a
real Asterisk with the project's dialplan; Ctrl-C stops all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.settings import get_settings
from cli.main import CommandError


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def _database() -> None:
    from backend.migrate import upgrade
    from backend.pgcluster import database_url, default_cluster

    if not get_settings().database_url:
        _step("PostgreSQL (local cluster)")
        cluster = default_cluster()
        cluster.start()
        cluster.ensure_database()
    _step("migrations")
    upgrade(database_url())


def _demo_data() -> None:
    from backend.db.engine import dispose_all
    from backend.demo import issue_demo_cards

    async def issue() -> list[str]:
        try:
            return await issue_demo_cards()
        finally:
            await dispose_all()

    issued = asyncio.run(issue())
    _step(f"demo cards ({len(issued)} new)")

    async def staff() -> list[str]:
        from backend.demo import ensure_demo_staff

        try:
            return await ensure_demo_staff()
        finally:
            await dispose_all()

    _step(f"demo staff accounts ({len(asyncio.run(staff()))} new)")


def _prompts() -> None:
    from prompts.build import build

    report = build()
    _step(f"prompts ({len(report.built)} built, {len(report.skipped)} unchanged)")


def _spawn(args: list[str], log_name: str) -> subprocess.Popen[bytes]:
    logs = get_settings().data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = (logs / log_name).open("ab")
    exe = str(Path(sys.executable).with_name("ivr12333"))
    return subprocess.Popen([exe, *args], stdout=log_file, stderr=subprocess.STDOUT)


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"{what} exited early (see .local/logs)")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise CommandError(f"{what} did not start listening on port {port}")


def _metrics_port(agi_port: int) -> int:
    """The settings' port for a FastAGI server's metrics, or a free one (to print it)."""
    import socket

    port = get_settings().metrics_port_for(agi_port)
    if port:
        return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free: int = sock.getsockname()[1]
        return free


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args: argparse.Namespace) -> int:
    from backend.logsetup import configure_logging

    settings = get_settings()
    configure_logging("warning", settings.log_file)
    os.environ.setdefault("IVR_LOG_FILE", str(settings.data_dir / "logs" / "ivr12333.log"))
    # `kill` and service managers send SIGTERM: stop as on Ctrl-C. SIGINT is set too, since
    # a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs: list[subprocess.Popen[bytes]] = []
    asterisk_started = False
    try:
        _database()
        _demo_data()
        _prompts()
        # Two FastAGI servers, so the dialplan's failover has somewhere to go.
        agi_ports = (settings.agi_port, settings.agi_port + 1)
        metrics_ports = [_metrics_port(port) for port in agi_ports]
        for port, metrics in zip(agi_ports, metrics_ports, strict=True):
            _step(
                f"FastAGI server on 127.0.0.1:{port} (metrics http://127.0.0.1:{metrics}/metrics)"
            )
            # One worker each: two servers already give the dialplan its failover here.
            serve = ["agi", "serve", "--port", str(port), "--metrics-port", str(metrics)]
            serve += ["--workers", "1"]
            procs.append(_spawn(serve, f"agi-{port}.log"))
            _wait_port(port, procs[-1], f"FastAGI server {port}")
        console = f"http://127.0.0.1:{settings.console_port}"
        _step(f"staff console on {console}/")
        # The wallboard reads the agent queue from this run's Asterisk.
        os.environ["IVR_CONSOLE_ASTERISK_INSTANCE"] = args.instance
        procs.append(_spawn(["console", "serve"], "console.log"))
        _wait_port(settings.console_port, procs[-1], "console")
        if not args.no_asterisk:
            from asterisk_local import instance as local

            _step("Asterisk 22 (first run builds its root folder: a few minutes)")
            servers = [f"127.0.0.1:{port}" for port in agi_ports]
            inst = local.up(servers, args.sip_port, instance=args.instance)
            asterisk_started = True
            _step(f"Asterisk ready: SIP 127.0.0.1:{inst.sip_port}, log {inst.log_path}")
        agi_metrics = [f"http://127.0.0.1:{port}/metrics" for port in metrics_ports]
        print(
            "\nThe 12333 hotline is up. Place a call (change the PIN of demo card A10000001):\n"
            '  echo "wait:6 2 wait:2 10000001# wait:2 123456# wait:2 '
            '11010519491231002*# wait:2 384729# wait:2 384729# wait:6" |\n'
            f"    .venv/bin/ivr12333 call 12333 --sip-port {args.sip_port} --keys -\n"
            'Or without a phone:  echo "2 10000001# ..." | .venv/bin/ivr12333 simulate --keys -\n'
            f"Wallboard (log in as super1):  {console}/supervisor/wallboard\n"
            f"Metrics for Prometheus:  {console}/metrics {' '.join(agi_metrics)}\n"
            "Health and readiness:  /healthz and /readyz beside each /metrics\n"
            "Logs are in .local/logs. Press Ctrl-C to stop everything.",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(1)
        raise CommandError("a server exited; see .local/logs")
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        _stop(procs)
        if asterisk_started:
            from asterisk_local import instance as local

            local.down(args.instance)
        if not args.keep_db and not settings.database_url:
            from backend.pgcluster import default_cluster

            default_cluster().stop()


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sip-port", type=int, default=5060, help="Asterisk's UDP SIP port")
    parser.add_argument("--no-asterisk", action="store_true", help="only the app servers")
    parser.add_argument("--instance", default="local", help="name of the local Asterisk")
    parser.add_argument("--keep-db", action="store_true", help="leave PostgreSQL running")
    parser.set_defaults(func=run)

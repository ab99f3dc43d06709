"""`ivr12333 asterisk up|down|status`: the local Asterisk 22 (Debian sid root folder)."""

from __future__ import annotations

import argparse

from cli.main import CommandError


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="install the dialplan and prompts, start Asterisk")
    up.add_argument(
        "--agi",
        action="append",
        metavar="HOST:PORT",
        help="a FastAGI server, tried in the order given (default: settings agi_host:agi_port)",
    )
    up.add_argument("--sip-port", type=int, default=5060, help="UDP port on 127.0.0.1")
    up.add_argument("--no-agents", action="store_true", help="no agent phones in the queue")
    up.add_argument("--instance", default="local", help="name of this Asterisk (default local)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop Asterisk")
    down.add_argument("--instance", default="local")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="is Asterisk running, and how is it set up")
    status.add_argument("--instance", default="local")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    from asterisk_local import instance as local
    from asterisk_local.root import RootError
    from backend.logsetup import configure_from_settings
    from backend.settings import get_settings

    configure_from_settings()
    settings = get_settings()
    servers = args.agi or [f"{settings.agi_host}:{settings.agi_port}"]
    try:
        inst = local.up(servers, args.sip_port, agents=not args.no_agents, instance=args.instance)
    except (local.AsteriskError, RootError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"Asterisk {inst.name} running (pid {inst.pid}): SIP 127.0.0.1:{inst.sip_port}, "
        f"FastAGI {' then '.join(inst.agi_servers)}, log {inst.log_path}"
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    from asterisk_local import instance as local

    ran = local.down(args.instance)
    print(
        f"Asterisk {args.instance} stopped" if ran else f"Asterisk {args.instance} was not running"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from asterisk_local import instance as local

    inst = local.status(args.instance)
    if inst is None:
        print(f"Asterisk {args.instance}: not running")
        return 3
    uptime = inst.cli("core show uptime seconds").strip().replace("\n", "; ")
    print(
        f"Asterisk {inst.name}: running (pid {inst.pid}), SIP 127.0.0.1:{inst.sip_port}, "
        f"FastAGI {' then '.join(inst.agi_servers)}; {uptime}"
    )
    return 0

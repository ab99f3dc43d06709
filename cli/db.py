"""`ivr12333 db start|stop|status|migrate`: the project's own PostgreSQL cluster."""

from __future__ import annotations

import argparse

from backend.pgcluster import ClusterError, default_cluster
from backend.settings import get_settings
from cli.main import CommandError


def _external() -> bool:
    if get_settings().database_url:
        print("IVR_DATABASE_URL is set: the local cluster is not used")
        return True
    return False


def start(_args: argparse.Namespace) -> int:
    if _external():
        return 0
    cluster = default_cluster()
    try:
        cluster.start()
        cluster.ensure_database()
    except ClusterError as exc:
        raise CommandError(str(exc)) from None
    print(f"PostgreSQL running, socket in {cluster.socket_dir} (port {cluster.port})")
    return 0


def stop(_args: argparse.Namespace) -> int:
    if _external():
        return 0
    try:
        default_cluster().stop()
    except ClusterError as exc:
        raise CommandError(str(exc)) from None
    print("PostgreSQL stopped")
    return 0


def status(_args: argparse.Namespace) -> int:
    if _external():
        return 0
    cluster = default_cluster()
    if cluster.running():
        print(f"running: {cluster.url()}")
        return 0
    print("stopped" if cluster.initialised() else "not created yet (ivr12333 db start)")
    return 3


def migrate(_args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.migrate import upgrade
    from backend.pgcluster import database_url

    settings = get_settings()
    if not settings.database_url:
        cluster = default_cluster()
        if not cluster.running():
            raise CommandError("the local cluster is not running (ivr12333 db start)")
        cluster.ensure_database()
    try:
        upgrade(database_url())
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(f"migration failed: {type(exc).__name__}") from None
    print("database schema is up to date")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func, help_text in (
        ("start", start, "create (once) and start the local cluster"),
        ("stop", stop, "stop the local cluster"),
        ("status", status, "is the local cluster running?"),
        ("migrate", migrate, "bring the schema up to date (Alembic)"),
    ):
        sub.add_parser(name, help=help_text).set_defaults(func=func)

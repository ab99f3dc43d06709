"""Several FastAGI server processes on one port: one event loop per core.

One event loop uses at most one core. `run_workers` forks N worker processes, each running
its own server (its own loop and its own database pool: the engine is made on first use,
after the fork) on a listening socket of its own bound with `SO_REUSEPORT` to the same
port, so the kernel spreads new connections across them. The parent serves nothing: it
reserves the port (a bound socket that never listens, which also makes port 0 one port for
all), says it is ready once every worker listens, restarts a worker that dies, and on
SIGTERM or SIGINT passes SIGTERM to every worker, so each drains its own calls, and waits
for them all. A worker dies with its parent (PR_SET_PDEATHSIG): killing the parent ends
the service as killing a single process would.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("ivr.workers")

# Starting a worker imports nothing (the parent has), but a loaded machine can be slow.
READY_TIMEOUT = 60.0
# A worker that keeps dying at start-up must not be restarted in a tight loop.
RESTART_PAUSE = 1.0
_PR_SET_PDEATHSIG = 1
# Worker k serves its own /metrics on the server's metrics port + k times this.
METRICS_WORKER_STRIDE = 100
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}

# A worker: given its index, the port and a callback to say it is listening, serve until
# SIGTERM.
WorkerMain = Callable[[int, int, Callable[[], None]], None]


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket holding `host:port` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _start(index: int, port: int, main: WorkerMain) -> tuple[int, int]:
    """Fork worker `index`; returns its pid and the read end of its ready pipe."""
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.close(ready_w)
        return pid, ready_r
    # The worker.
    code = 1
    try:
        os.close(ready_r)
        _die_with_parent(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        structlog.contextvars.bind_contextvars(worker=index)

        def ready() -> None:
            os.write(ready_w, b"1")
            os.close(ready_w)

        main(index, port, ready)
        code = 0
    except BaseException:
        log.exception("agi.worker.failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait_ready(pipes: dict[int, int], timeout: float) -> bool:
    """Wait until every worker wrote to its pipe; False if one closed it first or time ran
    out."""
    deadline = time.monotonic() + timeout
    waiting = set(pipes.values())
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            if not os.read(fd, 1):
                return False
            waiting.discard(fd)
    return True


def run_workers(
    host: str,
    port: int,
    count: int,
    main: WorkerMain,
    *,
    on_ready: Callable[[int], None] | None = None,
) -> int:
    """Serve with `count` worker processes until SIGTERM or SIGINT; returns the exit
    status (0 when every worker drained and exited cleanly)."""
    reservation = reserve_port(host, port)
    bound: int = reservation.getsockname()[1]
    # Signals wait in the queue until the loop below takes them (workers unblock them).
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    workers: dict[int, int] = {}  # pid -> index
    pipes: dict[int, int] = {}  # pid -> ready pipe
    for index in range(count):
        pid, ready = _start(index, bound, main)
        workers[pid], pipes[pid] = index, ready
        log.info("agi.worker.started", worker=index, pid=pid)
    started = _wait_ready(pipes, READY_TIMEOUT)
    for fd in pipes.values():
        os.close(fd)
    reservation.close()
    if not started:
        log.error("agi.worker.not_ready", workers=count)
        _stop(workers)
        _reap_all(workers)
        return 1
    log.info("agi.workers.listening", host=host, port=bound, workers=count)
    if on_ready is not None:
        on_ready(bound)
    return _supervise(workers, bound, main)


def _supervise(workers: dict[int, int], port: int, main: WorkerMain) -> int:
    stopping = False
    status = 0
    while workers:
        info = signal.sigwaitinfo(_SIGNALS)
        if info.si_signo in (signal.SIGTERM, signal.SIGINT) and not stopping:
            stopping = True
            log.info("agi.workers.draining", workers=len(workers))
            _stop(workers)
        for pid, code in _reaped():
            index = workers.pop(pid, None)
            if index is None:
                continue
            if stopping:
                # A worker's drain ends by removing its SIGTERM handler; a second SIGTERM
                # (ours, after a process group's) can land after that: it had finished.
                status = 1 if code not in (0, -signal.SIGTERM) else status
                continue
            log.error("agi.worker.died", worker=index, pid=pid, status=code)
            time.sleep(RESTART_PAUSE)
            new_pid, ready = _start(index, port, main)
            os.close(ready)
            workers[new_pid] = index
            log.info("agi.worker.restarted", worker=index, pid=new_pid)
    log.info("agi.workers.stopped", status=status)
    return status


def _stop(workers: dict[int, int]) -> None:
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _reaped() -> list[tuple[int, int]]:
    """(pid, exit status) of every child that has ended, without waiting."""
    ended = []
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        ended.append((pid, os.waitstatus_to_exitcode(raw)))
    return ended


def _reap_all(workers: dict[int, int]) -> None:
    for pid in list(workers):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        workers.pop(pid, None)

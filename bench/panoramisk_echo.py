"""The `echo` script as a panoramisk 1.4 FastAGI app, for comparison under the same load.

Standalone on purpose: it runs under a separate interpreter that has panoramisk installed
(`bench/.venv-panoramisk`), not the project. It sends the same commands as
`ivr.flows.echo`, with panoramisk's defaults (no logging set up, no gc tuning).

    python bench/panoramisk_echo.py --port 0    # prints "listening on HOST:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from panoramisk import fast_agi  # type: ignore[import-not-found,unused-ignore]

# Same listen backlog as the project's server, so lost connects do not decide the comparison.
LISTEN_BACKLOG = 4096


async def echo(request: Any) -> None:
    async def send(command: str) -> dict[str, Any]:
        result: dict[str, Any] = await request.send_command(command)
        if "error" in result:
            raise RuntimeError(f"{command}: {result}")
        return result

    await send('STREAM FILE ivr12333/welcome ""')
    reply = await send("GET DATA ivr12333/enter-card-number 6000 21")
    number = str(reply["result"][0])
    await send('STREAM FILE ivr12333/loss-card-readback ""')
    for digit in number:
        await send(f'STREAM FILE ivr12333/digit-{digit} ""')
    await send('STREAM FILE ivr12333/goodbye ""')
    await send('SET VARIABLE "IVR_NEXT" "hangup"')


async def main(host: str, port: int) -> None:
    app = fast_agi.Application(loop=asyncio.get_running_loop())
    app.add_route("echo", echo)
    server = await asyncio.start_server(app.handler, host, port, backlog=LISTEN_BACKLOG)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))

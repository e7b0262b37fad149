"""Run the FirecREST double as its own process (a FirecREST service that can be restarted).

``python -m firecrest_double --port 8090 --jwks-url http://127.0.0.1:4444/jwks \\
--slurm --fs /home``

serves FirecREST v2 on ``--host:--port`` until SIGTERM/SIGINT, verifying bearer tokens
against ``--jwks-url`` (an external OpenID Connect provider) or, without it, against
its own mini identity provider. ``--slurm`` runs jobs on the local Slurm cluster
(``scripts/slurm-up.sh``); running jobs are left alone when the process stops, as a
restarted FirecREST leaves them (``--cancel-on-stop`` cancels them instead). Once it
listens it prints one line, ``ready <url>``, on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .scheduler import Scheduler
from .server import FileSystemConfig, FirecrestDouble
from .simulated import SimulatedScheduler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m firecrest_double", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--system", default="cluster", help="the system name (default cluster)")
    p.add_argument("--slurm", action="store_true", help="run jobs with the local Slurm cluster")
    p.add_argument("--jwks-url", default=None, help="verify tokens against this JWKS")
    p.add_argument(
        "--fs", action="append", default=[], metavar="PATH",
        help="a 'users' file system mapped onto PATH (repeatable; the first is the default "
        "work dir); default: a temporary directory",
    )
    p.add_argument(
        "--cancel-on-stop", action="store_true",
        help="cancel the Slurm jobs this process submitted when it stops",
    )
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    scheduler: Scheduler
    if args.slurm:
        from .slurm import SlurmScheduler

        scheduler = SlurmScheduler(args.system, cancel_on_stop=args.cancel_on_stop)
    else:
        scheduler = SimulatedScheduler(args.system)
    filesystems = [
        FileSystemConfig(path, "users", i == 0) for i, path in enumerate(args.fs)
    ] or None
    double = FirecrestDouble(
        scheduler, host=args.host, port=args.port, filesystems=filesystems,
        jwks_url=args.jwks_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await double.start()
    try:
        print(f"ready {double.url}", flush=True)
        await stop.wait()
    finally:
        await double.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

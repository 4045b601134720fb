"""A TCP forwarder, so that pods on the real node reach services of this machine that listen on loopback only.

Everything of the local cluster listens on 127.0.0.1 (components.py); a pod's 127.0.0.1 is its own. This
process listens on the host's address on the real node's pod bridge (realnode.NODE_IP, reachable by pods and
by nothing outside this machine) and copies each connection to its loopback target, byte for byte (TLS passes
through untouched):

    python -m startbench.localcluster.forward 10.88.0.1:16443=127.0.0.1:16443 10.88.0.1:5000=127.0.0.1:5000

clusternet.py runs it for the API server (the `kubernetes` Service's endpoint) and the no-auth registry (where
images built in the cluster are pushed to and pulled from).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

CHUNK = 256 * 1024


def parse_pair(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """'LISTEN_HOST:PORT=TARGET_HOST:PORT' -> ((host, port), (host, port))."""
    listen, sep, target = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r} is not LISTEN_HOST:PORT=TARGET_HOST:PORT")

    def address(part: str) -> tuple[str, int]:
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} in {text!r} is not HOST:PORT")
        return host, int(port)

    return address(listen), address(target)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # a half-close passes through: the other direction may still be talking
    except (ConnectionError, OSError):
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


def _handler(target: tuple[str, int]):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(*target)
        except OSError as err:
            print(f"forward: connecting to {target[0]}:{target[1]} failed: {err}", file=sys.stderr, flush=True)
            await _close(client_writer)
            return
        try:
            await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))
        finally:
            await _close(target_writer)
            await _close(client_writer)
    return handle


async def serve(pairs: list[tuple[tuple[str, int], tuple[str, int]]], stop: asyncio.Event) -> None:
    servers = [await asyncio.start_server(_handler(target), host, port, reuse_address=True)
               for (host, port), target in pairs]
    for ((host, port), (thost, tport)) in pairs:
        print(f"forward: {host}:{port} -> {thost}:{tport}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m startbench.localcluster.forward", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", metavar="LISTEN=TARGET", help="HOST:PORT=HOST:PORT")
    args = parser.parse_args(argv)
    try:
        pairs = [parse_pair(p) for p in args.pairs]
    except ValueError as err:
        parser.error(str(err))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(pairs, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

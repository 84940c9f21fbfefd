"""A front in miniature for tests/test_spawner.py, run as its own process: it starts the spawner while it has one
thread, then starts threads (polars), and has the spawner fork echo children that it kills and forks again.

    python tests/spawn_probe.py restart          prints one JSON line of what it saw
    python tests/spawn_probe.py orphan FILE      forks one child that writes FILE once its socket closes, then
                                                 waits to be killed
    python tests/spawn_probe.py threaded         tries to start the spawner with a thread running
"""

import asyncio
import json
import os
import signal
import sys
import threading

from gexsrv import spawner


def echo(sock, args):
    """A child: answer each JSON line with its pid, the threads it had when it started, and the line's value."""
    threads = len(os.listdir("/proc/self/task"))
    with sock.makefile("rwb") as stream:
        for line in stream:
            stream.write(json.dumps([os.getpid(), threads, json.loads(line)]).encode() + b"\n")
            stream.flush()
    if args.get("eof_file"):
        with open(args["eof_file"], "w") as f:
            f.write("eof\n")


class Lines:
    """The probe's end of a child's socket: JSON lines each way; receive() is None once the child's end closed."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def receive(self):
        line = await self.reader.readline()
        return json.loads(line) if line else None

    async def close(self):
        self.writer.close()
        await self.writer.wait_closed()


async def call(sock, args):
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    channel = Lines(reader, writer)
    writer.write(json.dumps(args).encode() + b"\n")
    return channel, await channel.receive()


async def restart(handle):
    exits = asyncio.Queue()
    await handle.connect(lambda pid, status: exits.put_nowait((pid, status)))
    seen = []
    for round_ in range(3):
        pid, sock = await handle.spawn("spawn_probe:echo", {})
        channel, (child_pid, threads, args) = await call(sock, [round_])
        os.kill(pid, signal.SIGKILL)
        ended, status = await exits.get()
        eof = await channel.receive()
        seen.append({"pid": pid, "child_pid": child_pid, "threads": threads, "args": args, "ended": ended,
                     "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None, "eof": eof is None})
        await channel.close()
    await handle.close()
    return {"front_threads": len(os.listdir("/proc/self/task")), "rounds": seen}


async def orphan(handle, path):
    await handle.connect(lambda pid, status: None)
    pid, sock = await handle.spawn("spawn_probe:echo", {"eof_file": path})
    await call(sock, [])
    print(json.dumps({"child_pid": pid}), flush=True)
    await asyncio.Event().wait()


def main():
    mode = sys.argv[1]
    if mode == "threaded":
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        try:
            spawner.start()
        except spawner.SpawnerError as exc:
            print(json.dumps({"refused": str(exc)}))
        return
    handle = spawner.start()
    import polars  # noqa: F401 -- its thread pool: the front runs threads from here on, the spawner does not
    if mode == "restart":
        print(json.dumps(asyncio.run(restart(handle))))
    else:
        asyncio.run(orphan(handle, sys.argv[2]))


if __name__ == "__main__":
    main()

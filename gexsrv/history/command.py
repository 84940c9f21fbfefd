"""HISTORY_DOWNLOAD_COMMAND: the original's external downloader, a template of a command line, run without a shell.

The template is split into arguments first (shlex, the way a shell would split it) and only then are the
placeholders filled in, so a value with spaces or quotes stays one argument. A value that began with `-` could
still be read as an option by the command, so such values are refused.
"""

import asyncio
import os
import shlex
import signal
import string

PLACEHOLDERS = ("id", "url", "ticker", "endpoint", "path")
TAIL_CHARS = 500
READ_BYTES = 1 << 16


class CommandFailed(Exception):
    """The command could not run, timed out or exited non-zero; the message carries its output's tail."""


def placeholders(template):
    """The template's arguments and the placeholders they use; a template gexsrv cannot read raises."""
    try:
        args = shlex.split(template)
        used = {name for arg in args for _text, name, _spec, _conv in string.Formatter().parse(arg) if name is not None}
    except ValueError as exc:
        raise CommandFailed(f"HISTORY_DOWNLOAD_COMMAND cannot be read: {exc}") from None
    if not args:
        raise CommandFailed("HISTORY_DOWNLOAD_COMMAND names no program")
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise CommandFailed(f"HISTORY_DOWNLOAD_COMMAND uses unknown placeholders {unknown}; "
                            f"known: {', '.join('{' + name + '}' for name in PLACEHOLDERS)}")
    return args, used


def writes_file(template):
    """True when the command writes the file to {path} for gexsrv to import; False when it imports it itself."""
    return "path" in placeholders(template)[1]


def option_like(values):
    """The first (name, value) that would read as an option where it begins an argument, else None."""
    for name, value in values.items():
        if str(value).startswith("-"):
            return name, value
    return None


def argv(template, values):
    """The command's arguments with the values filled in."""
    found = option_like(values)
    if found:
        raise CommandFailed(f"{found[0]} {found[1]!r} starts with '-' and would read as an option of the command")
    args, _used = placeholders(template)
    try:
        return [arg.format(**values) for arg in args]
    except ValueError as exc:  # a format spec the value does not fit, e.g. {url:d}
        raise CommandFailed(f"HISTORY_DOWNLOAD_COMMAND cannot be filled in: {exc}") from None


async def run(template, values, timeout):
    """Run the filled-in command; return the tail of its output (stdout and stderr) when it exits 0."""
    command = argv(template, values)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        raise CommandFailed(f"the download command could not start: {exc}") from None
    try:
        output = await asyncio.wait_for(_finish(proc), timeout)
    except asyncio.TimeoutError:
        raise CommandFailed(f"the download command did not finish within {timeout:g} s") from None
    finally:
        if proc.returncode is None:  # timed out, or the server is stopping: nothing of it may linger
            _kill_group(proc.pid)
            await proc.wait()
    tail = output.decode(errors="replace").strip()[-TAIL_CHARS:]
    if proc.returncode != 0:
        raise CommandFailed(f"the download command exited with {proc.returncode}: {tail}")
    return tail


async def _finish(proc):
    """Wait for the process to exit, keeping only the end of its output (a progress bar can write megabytes)."""
    tail = b""
    while chunk := await proc.stdout.read(READ_BYTES):
        tail = (tail + chunk)[-4 * TAIL_CHARS:]
    await proc.wait()
    return tail


def _kill_group(pid):
    """The command's whole process group: a script's own children (curl, say) must not outlive it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # it exited just now
        pass

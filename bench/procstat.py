"""A server's CPU time, read from /proc/<pid>/stat (Linux): what the benchmark servers spend per request. A server
is its process and every process under it (gexsrv --processes 2: the front, its spawner and the engine)."""
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")  # the unit of utime and stime


def tree(pid):
    """pid and the pids of every living process under it."""
    found = [pid]
    for each in found:
        try:
            for task in os.listdir(f"/proc/{each}/task"):
                found += [int(child) for child in Path(f"/proc/{each}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def cpu_seconds(pid):
    """User plus system CPU seconds of process `pid` and those under it (tree), all their threads, so far; None
    once `pid` is gone. A process under it that ended takes its CPU time along."""
    own = process_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(process_cpu_seconds(child) or 0 for child in tree(pid)[1:])


def process_cpu_seconds(pid):
    """User plus system CPU seconds of process `pid`, all its threads, so far; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, field 2, is in parentheses and may hold spaces: count the fields after its ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, fields 14 and 15 of proc(5)

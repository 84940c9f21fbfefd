"""A server's CPU time and memory, read from /proc (Linux): what the benchmark servers spend per request. A server
is its process and every process under it (gexsrv --processes 2: the front, its spawner and the engine)."""
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")  # the unit of utime and stime


def tree(pid):
    """pid and the pids of every living process under it."""
    found = [pid]
    for each in found:
        found += children(each)
    return found


def children(pid):
    """The pids of a process' children (each listed under the thread that forked it); none once it ended."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(child) for task in tasks for child in task_children(pid, task)]


def task_children(pid, task):
    try:
        return Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile: its children went to another
        return []


def cpu_seconds(pid):
    """User plus system CPU seconds of process `pid` and those under it (tree), all their threads, so far; None
    once `pid` is gone. A process under it that ended takes its CPU time along."""
    own = process_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(process_cpu_seconds(child) or 0 for child in tree(pid)[1:])


def process_cpu_seconds(pid):
    """User plus system CPU seconds of process `pid`, all its threads, so far; None once it is gone."""
    return _cpu_of(f"/proc/{pid}/stat")


def loop_cpu_seconds(pid):
    """The same of the process' main thread alone: a gexsrv's event loop (with two processes, the front's)."""
    return _cpu_of(f"/proc/{pid}/task/{pid}/stat")


def _cpu_of(path):
    try:
        stat = Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, field 2, is in parentheses and may hold spaces: count the fields after its ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, fields 14 and 15 of proc(5)


def memory_of(pid):
    """{rss_mb, peak_mb}: VmRSS and VmHWM of one process in MB; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)  # the kernel reports kB
    if "VmRSS" not in fields:  # a zombie: exited, not yet waited for
        return None
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}

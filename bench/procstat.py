"""A process's CPU time, read from /proc/<pid>/stat (Linux): what the benchmark servers spend per request."""
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")  # the unit of utime and stime


def cpu_seconds(pid):
    """User plus system CPU seconds of process `pid`, all its threads, so far; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, field 2, is in parentheses and may hold spaces: count the fields after its ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, fields 14 and 15 of proc(5)

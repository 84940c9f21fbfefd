"""Threads that give way: the heavy reads (GET /api/sql, the day view's grid) run on threads of their own at a lower
CPU priority, so that on 2 cores the event loop and ingest get a core first."""

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("gexsrv.lowpriority")


def lower_priority(niceness, what):
    """Lower the calling thread's priority to `niceness`; `what` runs on it, for the warning where it cannot."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)  # on Linux a thread id names that thread
    except OSError:  # elsewhere it names no process: the thread runs at the server's priority
        log.warning("%s run at normal CPU priority: cannot lower their thread's", what, exc_info=True)


def one_thread(name, niceness, what):
    """An executor of one thread at `niceness`: its tasks run one at a time, each waiting its turn."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=lower_priority,
                              initargs=(niceness, what))

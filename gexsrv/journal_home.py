"""Where the write-ahead journal lives: <data_dir>/journal, or the `journal_dir` setting (a device of its own,
so that other writes to the data disk do not slow its fsyncs).

The data dir remembers the folder in use (JOURNAL_DIR). A start that names another folder while the one before
still holds segments would begin an empty journal and never ingest what the old one acknowledged: it is refused,
saying how to move the journal.
"""

import contextlib
import os

from gexsrv.durable import replace_file
from gexsrv.journal import SUFFIX

REMEMBERED = "JOURNAL_DIR"


class JournalMoved(Exception):
    """The journal folder changed while the one before still holds records."""


def default(data_dir):
    return os.path.join(data_dir, "journal")


def settle(data_dir, chosen):
    """The journal folder to use (chosen, or the default), remembered in the data dir; JournalMoved if the folder
    used before still holds segments."""
    folder = os.path.realpath(chosen or default(data_dir))
    before = previous(data_dir)
    held = segments(before) if before != folder else []
    if held:
        raise JournalMoved(
            f"the journal in {before} still holds {len(held)} segments that this start, using {folder}, would "
            f"never ingest: stop every server on this data dir and move them there (mv {before}/*{SUFFIX} "
            f"{folder}/), or start with --journal-dir {before}")
    remember(data_dir, folder)
    return folder


def remember(data_dir, folder):
    """Only a folder other than the default is remembered, so a data dir moved whole keeps its journal."""
    path = os.path.join(data_dir, REMEMBERED)
    if folder == os.path.realpath(default(data_dir)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    elif previous(data_dir) != folder:
        replace_file(data_dir, REMEMBERED, folder.encode())


def previous(data_dir):
    """The folder the data dir last used: the one remembered, else the default (every start before the setting)."""
    try:
        with open(os.path.join(data_dir, REMEMBERED), "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        return os.path.realpath(default(data_dir))


def segments(folder):
    try:
        return [name for name in os.listdir(folder) if name.endswith(SUFFIX)]
    except FileNotFoundError:
        return []

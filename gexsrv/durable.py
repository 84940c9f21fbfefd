"""Publishing a finished file under its final name without ever replacing one (data/ is never overwritten), the
server's small bookkeeping files, replaced whole, and large files deleted without stalling the disk."""

import os
import time

# ext4 mounted with `discard` (as this machine's disk is) discards a file's blocks as it frees them: a synced
# 64 MiB file unlinked at once held the disk for 20-30 ms, and every journal fdatasync waited behind it. Freed
# 4 MiB at a time, 5 ms apart, the longest such wait was 10-14 ms (docs/performance.md, Disk stalls).
FREE_STEP = 4 << 20
FREE_PAUSE_S = 0.005
# Large files are synced a MiB at a time as they are written: one fsync of a whole file (a 30 MB archive file, a
# 196 MB history file) held the disk 50-200 ms, and the journal's fdatasyncs, and so the replies to /gex, waited
# as long (docs/performance.md, Disk stalls).
SYNC_EVERY = 1 << 20


def fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_new(temp_path, final_path):
    """Give the fsynced temp_path the name final_path unless that name exists; True if this call published it.

    os.link fails rather than replace, unlike rename; the folder is fsynced so the new name survives a crash.
    """
    try:
        os.link(temp_path, final_path)
    except FileExistsError:
        return False
    fsync_dir(os.path.dirname(final_path))
    return True


class SyncedWriter:
    """Writes to a file, syncing what it wrote every SYNC_EVERY bytes (a large write in pieces of that size), so
    that the disk never holds more of it unsynced than that; the final fsync is the caller's."""

    def __init__(self, file):
        self.file = file
        self.unsynced = 0

    def write(self, data):
        view = memoryview(data)
        for at in range(0, len(view), SYNC_EVERY):
            piece = view[at:at + SYNC_EVERY]
            self.file.write(piece)
            self.unsynced += len(piece)
            if self.unsynced >= SYNC_EVERY:
                self.file.flush()
                os.fdatasync(self.file.fileno())
                self.unsynced = 0
        return len(view)


def shrink_away(path):
    """Delete a file a few MiB at a time, from its end; a worker thread's job (it sleeps between steps)."""
    size = os.path.getsize(path)
    while size > FREE_STEP:
        size -= FREE_STEP
        os.truncate(path, size)
        time.sleep(FREE_PAUSE_S)
    os.unlink(path)


def replace_file(folder, name, content):
    """Write folder/name whole: readers, and a crash, leave the old file or the new one, never a part of either.
    For files the server rewrites (latest.json, its bookkeeping), never for data."""
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{name}.tmp")  # one name: a leftover of a crash is overwritten next time
    with open(temp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, os.path.join(folder, name))
    fsync_dir(folder)

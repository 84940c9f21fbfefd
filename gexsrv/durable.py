"""Publishing a finished file under its final name without ever replacing one (data/ is never overwritten), and
the server's small bookkeeping files, replaced whole."""

import os


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


def replace_durably(path, data):
    """Write a small file whole: an fsynced temp file renamed over path, so a crash leaves the old or the new one.
    For the server's own bookkeeping files only, never for data."""
    temp = f"{path}.tmp"
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_dir(os.path.dirname(path))

"""Publishing a finished file under its final name without ever replacing one (data/ is never overwritten)."""

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

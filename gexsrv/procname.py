"""A process' name as `ps -o comm`, top and htop show it (Linux; elsewhere it stays the interpreter's): with two
processes the front, the spawner and the engine all have `python -m gexsrv` as their command line."""


def name_process(name):
    """At most 15 bytes are kept. Threads started afterwards take the name too."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name)
    except OSError:
        pass

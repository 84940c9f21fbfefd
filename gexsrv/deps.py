"""Check the runtime dependencies before anything imports them, so a broken install fails with one clear message.

Each is imported, so a broken one is found too, but those whose import starts threads (polars, pyarrow, numpy's
BLAS) are only looked up: the front (processes = 2) forks its spawner after this check, from a process that runs
no thread (gexsrv.spawner).
"""

import importlib
import importlib.metadata
import importlib.util

# (import name, distribution name, oldest version that works)
REQUIRED = [
    ("tornado", "tornado", "6.6"),  # 6.6: a coroutine streaming_callback is awaited (gexsrv.history.download)
    ("duckdb", "duckdb", "1.2"),
    ("polars", "polars", "1.0"),
    ("pyarrow", "pyarrow", "15.0"),
    ("numpy", "numpy", "1.26"),
    ("msgspec", "msgspec", "0.18"),
    ("dotenv", "python-dotenv", "1.0"),
    ("tqdm", "tqdm", "4.60"),
    ("zstandard", "zstandard", "0.22"),
    ("prometheus_client", "prometheus_client", "0.20"),
]
STARTS_THREADS = {"polars", "pyarrow", "numpy"}


def importable(module):
    """None, or why the module cannot be imported."""
    if module in STARTS_THREADS:
        return None if importlib.util.find_spec(module) else f"no module named {module!r}"
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)
    return None


def _as_tuple(version):
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems():
    """One line per missing or too-old dependency; empty when all is well."""
    found = []
    for module, dist, oldest in REQUIRED:
        why = importable(module)
        if why:
            found.append(f"{dist} >= {oldest}: missing ({why})")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "0"
        if _as_tuple(version) < _as_tuple(oldest):
            found.append(f"{dist} >= {oldest}: found {version}, too old")
    return found


def message(lines):
    return "\n".join(
        ["gexsrv cannot start, these dependencies are missing or too old:"]
        + [f"  - {line}" for line in lines]
        + ["Install them with:  python -m pip install -e .   (or run `make run`, which sets up .venv)"]
    )

"""The validation report: msgspec Structs (the JSON form) and the readable summary table."""

import datetime as dt

import msgspec

EXAMPLES = 5  # examples kept per check; each check's query has LIMIT EXAMPLES

PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"


class CheckResult(msgspec.Struct, kw_only=True):
    """One check: `count` defects (rows, snapshots or files, as `unit` says), the first EXAMPLES with their keys."""

    name: str
    status: str  # passed | failed | warning | skipped
    count: int = 0
    unit: str = "rows"
    checked: str = ""  # what was looked at, e.g. which tables or files
    detail: str = ""  # why skipped, or what a warning means
    examples: list[dict] = []
    elapsed_s: float = 0.0


class Report(msgspec.Struct, kw_only=True):
    status: str  # clean | failed | unreadable
    exit_code: int  # 0 clean, 1 a check failed, 2 the data could not be read
    data_dir: str
    generated_at: str
    elapsed_s: float
    options: dict
    checks: list[CheckResult] = []
    error: str = ""


def result(name, rows, columns, *, severity=FAILED, unit="rows", checked="", detail=""):
    """A CheckResult from a check query's rows of (count, example columns...), at most EXAMPLES of them.

    Every check query returns its total defect count in the first column of each row (a window count), so one
    query yields both the count and the examples.
    """
    count = rows[0][0] if rows else 0
    examples = [_example(columns, row[1:]) for row in rows[:EXAMPLES]]
    return CheckResult(name=name, status=severity if count else PASSED, count=count, unit=unit,
                       checked=checked, detail=detail if count else "", examples=examples)


def skipped(name, why):
    return CheckResult(name=name, status=SKIPPED, detail=why)


def _example(columns, values):
    example = dict(zip(columns, values))
    if isinstance(example.get("timestamp"), int):
        example["time"] = iso(example["timestamp"])
    return example


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


def finish(checks, data_dir, options, started, error=""):
    elapsed = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 3)
    if error:
        status, code = "unreadable", 2
    elif any(c.status == FAILED for c in checks):
        status, code = "failed", 1
    else:
        status, code = "clean", 0
    return Report(status=status, exit_code=code, data_dir=str(data_dir), generated_at=started.isoformat(),
                  elapsed_s=elapsed, options=options, checks=checks, error=error)


def encode(report):
    return msgspec.json.encode(report)


def decode(raw):
    return msgspec.json.decode(raw, type=Report)


def table(report):
    """The summary: one line per check, then the examples of every check that did not pass."""
    width = max([len(c.name) for c in report.checks] + [5])
    lines = [f"{'CHECK':<{width}}  {'STATUS':<8} {'COUNT':>10}  CHECKED"]
    for c in report.checks:
        count = f"{c.count} {c.unit}" if c.count else "-"
        lines.append(f"{c.name:<{width}}  {c.status:<8} {count:>10}  {c.checked or c.detail}")
    for c in report.checks:
        if c.status in (FAILED, WARNING):
            lines.append("")
            lines.append(f"{c.name}: {c.status}, {c.count} {c.unit}" + (f" ({c.detail})" if c.detail else ""))
            lines.extend(f"  {_one_line(e)}" for e in c.examples)
    lines.append("")
    summary = f"{report.status}: {sum(c.status == FAILED for c in report.checks)} failed, " \
              f"{sum(c.status == WARNING for c in report.checks)} warnings, {len(report.checks)} checks " \
              f"in {report.elapsed_s:.2f} s ({report.data_dir})"
    lines.append(summary if not report.error else f"{report.status}: {report.error}")
    return "\n".join(lines)


def _one_line(example):
    return "  ".join(f"{k}={v}" for k, v in example.items())

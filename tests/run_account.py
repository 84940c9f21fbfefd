"""Every collected test runs: a plugin or a worker that loses cases fails the run instead of letting it pass.

Registered on the controller (pytest-xdist reports every worker's results there, or the one process without
workers): a test counts once its call phase reported, or once it skipped with a reason at setup. Reports are
counted, not their node ids: under workers, schemathesis' cases of one operation each report the test's id alone.
"""

import pytest


class RunAccount:
    def __init__(self):
        self.ran = 0

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.skipped and report.when == "setup"):
            self.ran += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        missing = 0 if session.config.option.collectonly else session.testscollected - self.ran
        if exitstatus == pytest.ExitCode.OK and missing > 0:
            session.config.get_terminal_writer().line(
                f"{missing} of {session.testscollected} collected tests neither ran nor skipped with a reason",
                red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

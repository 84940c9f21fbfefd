"""Settings: conf/gexsrv.toml < --config < environment and .env < flags; --help lists every one."""

import tomllib

import msgspec
import pytest

from gexsrv import settings
from gexsrv.cli import serve_parser
from forkserver import run_gexsrv
from helpers import REPO


def parse(argv, environ=None, cwd="."):
    defaults = settings.read_toml(settings.default_config_path())
    return settings.load(serve_parser(defaults).parse_args(argv), environ=environ or {}, cwd=cwd)


def test_every_setting_has_a_default_in_conf_and_nothing_else_is_there():
    with open(REPO / "conf" / "gexsrv.toml", "rb") as f:
        defaults = tomllib.load(f)
    assert set(defaults) == {f.name for f in settings.FIELDS}
    assert parse([]) == msgspec.convert(defaults, settings.Settings)


def test_config_file_then_environment_then_flags_override(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\ningest_max_records = 64\n')
    (tmp_path / ".env").write_text("GEXSRV_INGEST_MAX_RECORDS=32\nGEXBOT_API_KEY=from-dotenv\nGEXSRV_DEBUG=true\n")
    env = {"GEXSRV_PORT": "9002", "GEXSRV_DEBUG": "false"}
    conf = parse(["--config", str(config), "--port", "9003"], environ=env, cwd=tmp_path)
    assert (conf.port, conf.host, conf.ingest_max_records) == (9003, "0.0.0.0", 32)
    assert conf.gexbot_api_key == "from-dotenv"
    assert conf.debug is False  # the real environment beats .env
    assert parse(["--debug"], environ={"GEXSRV_DEBUG": "0"}).debug is True


@pytest.mark.parametrize("argv, environ, message", [
    (["--port", "http"], {}, "gexsrv: invalid --port = 'http': Expected `int`, got `str`"),
    ([], {"GEXSRV_PORT": "70000"}, "gexsrv: invalid GEXSRV_PORT = '70000': Expected `int` <= 65535"),
    (["--ingest-interval-ms", "0"], {}, "gexsrv: invalid --ingest-interval-ms = '0': Expected `float` > 0.0"),
    ([], {"GEXSRV_NAIVE_TIME_ZONE": "Mars/Base"}, "gexsrv: invalid GEXSRV_NAIVE_TIME_ZONE = 'Mars/Base': unknown "
                                                  "time zone 'Mars/Base' (use local, UTC or an IANA name such as "
                                                  "America/New_York)"),
    (["--default-endpoint", "a/b/c"], {}, "gexsrv: invalid --default-endpoint = 'a/b/c': expected an endpoint"),
])
def test_invalid_values_stop_naming_the_flag_or_variable_and_the_value(argv, environ, message):
    with pytest.raises(SystemExit) as stopped:
        parse(argv, environ=environ)
    assert str(stopped.value).startswith(message)


def test_an_invalid_value_in_a_file_names_the_key_and_the_file(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text("max_strikes = 0\n")
    with pytest.raises(SystemExit) as stopped:
        parse(["--config", str(config)])
    assert str(stopped.value) == f"gexsrv: invalid max_strikes in {config} = 0: Expected `int` >= 1"


def test_unknown_keys_in_a_config_file_are_named_with_the_nearest_setting(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text('prot = 1\ndata-dir = "x"\nzzz = 1\n')
    with pytest.raises(SystemExit) as stopped:
        parse(["--config", str(config)])
    assert str(stopped.value) == (f"gexsrv: unknown setting data-dir in {config} (did you mean data_dir?); "
                                  f"prot in {config} (did you mean port?); zzz in {config}")


@pytest.mark.parametrize("environ", [{"GEXSRV_CORS_ORIGIN": "*"}, {"GEXSRV_CONFIG": "cors.toml"}])
def test_a_setting_that_is_gone_names_its_successor(tmp_path, environ):
    (tmp_path / "cors.toml").write_text('cors_origin = "*"\n')
    environ = {name: str(tmp_path / value) if name == "GEXSRV_CONFIG" else value for name, value in environ.items()}
    with pytest.raises(SystemExit, match="the setting cors_origin is replaced by allowed_origins"):
        parse([], environ=environ)


@pytest.mark.parametrize("argv, message", [
    (["--port", "http"], "gexsrv: invalid --port = 'http': Expected `int`, got `str`"),
    (["--config", "/no/such/gexsrv.toml"], "gexsrv: cannot read config /no/such/gexsrv.toml: [Errno 2]"),
    (["--data-dri", "x"], "python -m gexsrv: unrecognized arguments: --data-dri x (did you mean --data-dir?); see "
                          "python -m gexsrv --help"),
    (["improt", "file.json"], "python -m gexsrv: unknown command 'improt' (did you mean import?); the commands are "
                              "serve (the default), import, backfill, validate"),
])
def test_a_configuration_error_is_one_line_and_exit_status_2(tmp_path, argv, message):
    run = run_gexsrv([*argv, "--data-dir", str(tmp_path / "data")], cwd=REPO, timeout=60)
    assert run.returncode == 2  # as argparse's errors and the start-up errors; it was 1
    assert run.stderr.startswith(message) and run.stderr.count("\n") == 1, run.stderr
    assert not (tmp_path / "data").exists()


def test_help_lists_every_setting_with_its_environment_names():
    out = run_gexsrv(["--help"], cwd=REPO, check=True).stdout
    for field in settings.FIELDS:
        assert "--" + field.name.replace("_", "-") in out
    for name in ("GEXSRV_PORT", "GEXBOT_API_KEY", "--poll-interval", "--config"):
        assert name in out


def test_missing_and_old_dependencies_stop_the_server_before_it_binds(tmp_path):
    fake = tmp_path / "fake"
    (fake / "msgspec").mkdir(parents=True)
    (fake / "msgspec" / "__init__.py").write_text("raise ImportError('No module named msgspec')\n")
    (fake / "duckdb").mkdir()
    (fake / "duckdb" / "__init__.py").write_text("")
    (fake / "duckdb-0.9.0.dist-info").mkdir()
    (fake / "duckdb-0.9.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: duckdb\nVersion: 0.9.0\n")
    run = run_gexsrv(["--port", "0", "--data-dir", str(tmp_path / "d")], cwd=REPO, timeout=60,
                     env={"PYTHONPATH": f"{fake}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 3
    assert "duckdb >= 1.2: found 0.9.0, too old" in run.stderr
    assert "msgspec >= 0.18: missing" in run.stderr
    assert "pip install" in run.stderr
    assert "listening" not in run.stderr + run.stdout
    assert not (tmp_path / "d").exists()

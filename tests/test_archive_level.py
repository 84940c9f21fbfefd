"""The raw archive's zstd level is a setting (archive_zstd_level): read from conf, the environment and its flag,
bounded, and used by the archiver for every segment it compresses; any level reads back byte for byte."""

import asyncio
import os

import pytest
import zstandard

from gexsrv import archive, settings
from gexsrv.cli import serve_parser
from gexsrv.journal import Journal, segment_name
from gexsrv.journalline import encode_line


def parse(argv, environ=None):
    defaults = settings.read_toml(settings.default_config_path())
    return settings.load(serve_parser(defaults).parse_args(argv), environ=environ or {})


def test_the_level_comes_from_conf_then_the_environment_then_the_flag():
    assert parse([]).archive_zstd_level == archive.LEVEL == 1
    assert parse([], {"GEXSRV_ARCHIVE_ZSTD_LEVEL": "-1"}).archive_zstd_level == -1
    assert parse(["--archive-zstd-level", "7"], {"GEXSRV_ARCHIVE_ZSTD_LEVEL": "-1"}).archive_zstd_level == 7


@pytest.mark.parametrize("level", ["23", "-8", "3.5"])
def test_a_level_zstd_has_not_is_refused_naming_the_setting(level):
    with pytest.raises(settings.ConfigError) as refused:
        parse([], {"GEXSRV_ARCHIVE_ZSTD_LEVEL": level})
    assert str(refused.value).startswith(f"gexsrv: invalid GEXSRV_ARCHIVE_ZSTD_LEVEL = '{level}': Expected `int`")


# Lines of the segment: ~4 of zstd's 128 KiB reads, so the stream spans several; 20,000 at level 19 cost each test
# 2 CPU-seconds.
LINES = 4_000


def segment(folder):
    """A journal segment of LINES repetitive lines, as a closed segment is handed to the archiver."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, segment_name(1))
    body = b'{"ticker":"SPX","strikes":[[7100,1.5,2.5,[1,2,3,4,5]]]}'
    with open(path, "wb") as f:
        for seq in range(1, LINES + 1):
            f.write(b"".join(encode_line({"seq": seq, "kind": "snapshot", "arrived": 1777492800000}, body)))
    return path


@pytest.mark.parametrize("level", [-7, 1, 19])
def test_every_level_reads_back_byte_for_byte(tmp_path, level):
    path = segment(str(tmp_path / "journal"))
    final = archive.compress(path, str(tmp_path / "live"), level)
    with open(path, "rb") as f, open(final, "rb") as g:
        assert zstandard.ZstdDecompressor().stream_reader(g).read() == f.read()


def archived_size(tmp_path, level):
    """The archive file the archiver made of one segment at `level`; the segment leaves the journal."""
    path = segment(str(tmp_path / "journal"))
    journal = Journal(os.path.dirname(path), 1 << 30, 300)
    journal.open()
    archiver = archive.Archiver(journal, lambda: LINES, str(tmp_path / "live"), 0, level=level)
    asyncio.run(archiver._archive([(journal.segments[0], LINES)], LINES))
    asyncio.run(journal.close())
    assert not os.path.exists(path) and archiver.files == 1
    (seq, final), = archive.files(archiver.root)
    assert seq == 1 and archive.last_seq(archiver.root) == LINES
    return os.path.getsize(final)


def test_the_archiver_compresses_at_its_level(tmp_path):
    """A high level makes a smaller file than a negative one of the same segment: the level reached zstd."""
    assert archived_size(tmp_path / "high", 19) * 3 < archived_size(tmp_path / "low", -7)

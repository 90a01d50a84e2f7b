"""The CLI reports bad input as a message and a non-zero exit, never a traceback."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from ogasearch.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crawl", "--art-type", "Sculpture"], "unknown art type"),
        (["crawl", "--base-url", "ftp://example.org"], "base_url must start with"),
        (["crawl", "--concurrency", "0"], "concurrency must be at least 1"),
        (["crawl", "--max-items", "0"], "--max-items"),
    ],
)
def test_bad_crawl_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_corrupt_catalog_is_reported(tmp_path: Path) -> None:
    (tmp_path / "catalog.sqlite").write_bytes(b"garbage" * 1000)
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "status"])
    assert result.exit_code == 1
    assert "cannot open catalog" in result.output


def test_status_on_an_empty_data_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "status"])
    assert result.exit_code == 0
    assert "art_pages: none" in result.output

"""Catalog schema: migrations, version guard, idempotent upserts."""

import sqlite3
from pathlib import Path

import pytest

from ogasearch.catalog import SCHEMA_VERSION, Catalog
from ogasearch.crawl.oga import ArtPage, FileLink, License, ListingEntry
from ogasearch.errors import CatalogError


def test_new_catalog_is_at_current_version_in_wal_mode(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cat.close()
    Catalog(tmp_path / "c.sqlite").close()  # reopening migrates nothing and keeps working


def test_newer_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="cannot open catalog"):
        Catalog(path)


def test_storing_twice_makes_no_duplicates(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    run, resumed = cat.start_run("http://x", [9], False)
    assert not resumed
    assert cat.start_run("http://x", [9], False) == (run, True)
    entry = ListingEntry("http://x/content/a", "A", None)
    for _ in range(2):
        cat.record_listing(
            "http://x/l0",
            tid=9,
            page=0,
            run_id=run,
            etag=None,
            last_modified=None,
            body_sha256=None,
            body_size=None,
            entries=[entry],
            total=1,
            last_page=0,
            known=False,
        )
    (row,) = cat.pages_to_fetch(run, False, None)
    page = ArtPage(
        url=entry.url,
        node_id=1,
        title="A",
        author="me",
        author_url=None,
        submitter=None,
        submitter_url=None,
        post_date=None,
        posted_at=None,
        art_type="2D Art",
        art_type_tid=9,
        licenses=[License("CC0", None)],
        files=[FileLink("http://x/f/a.png", "a.png", "image/png", 3, 7)] * 2,
    )
    for _ in range(2):
        cat.store_page(row["id"], page, run_id=run, etag=None, last_modified=None, html_sha256="0" * 64, html_size=1)
    counts = {
        t: cat.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("art_pages", "files", "page_files")
    }
    assert counts == {"art_pages": 1, "files": 1, "page_files": 1}
    assert cat.pages_to_fetch(run, False, None) == []
    cat.finish_run(run)
    assert cat.start_run("http://x", [9], False)[1] is False

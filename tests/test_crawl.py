"""The crawler against a local OGA-like site on loopback: metadata, faults, politeness, resume."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from click.testing import CliRunner
from oga_site import OgaSite, SiteFile, SitePage, make_pages

from ogasearch.cli import main

FAST = ["--delay", "0", "--items-per-page", "5", "--backoff", "0.01", "--backoff-max", "0.05"]


def crawl(site: OgaSite, data_dir: Path, *args: str, fast: bool = True) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(data_dir), "crawl", "--base-url", site.base_url, *(FAST if fast else []), *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    return conn


def dump(data_dir: Path) -> dict:
    """The catalog's content without timestamps or row ids, for run-to-run comparison."""
    conn = db(data_dir)
    pages = [
        dict(r)
        for r in conn.execute(
            "SELECT url, node_id, title, author, author_url, submitter, post_date, posted_at, art_type, tags, "
            "licenses, attribution, description, favorites, collections, previews, state, error, etag "
            "FROM art_pages ORDER BY url"
        )
    ]
    files = [
        dict(r)
        for r in conn.execute(
            "SELECT url, name, mime, declared_length, fid, sha256, size, state, error FROM files ORDER BY url"
        )
    ]
    links = [
        tuple(r)
        for r in conn.execute(
            "SELECT p.url, f.url, pf.position FROM page_files pf JOIN art_pages p ON p.id = pf.page_id "
            "JOIN files f ON f.id = pf.file_id ORDER BY 1, 3"
        )
    ]
    return {"pages": pages, "files": files, "links": links}


def two_d(pages: list[SitePage]) -> list[SitePage]:
    return [p for p in pages if p.art_type == "2D Art"]


def test_complete_crawl_stores_exact_metadata_and_files(tmp_path: Path) -> None:
    pages = make_pages(12)
    with OgaSite(pages) as site:
        base = site.base_url
        code, out = crawl(site, tmp_path)
        assert code == 0, out
        assert site.count("/file/") == 0  # the download counter is never touched
        assert site.count("/user/") == 0
    conn = db(tmp_path)
    expected = two_d(pages)
    assert conn.execute("SELECT COUNT(*) FROM art_pages").fetchone()[0] == len(expected)
    for page in expected:
        row = conn.execute("SELECT * FROM art_pages WHERE url = ?", (base + page.path,)).fetchone()
        assert row["state"] == "done"
        assert row["node_id"] == page.node_id
        assert row["title"] == page.title
        assert row["author"] == page.author
        assert row["submitter"] == page.submitter
        assert row["posted_at"] == page.post_date.strftime("%Y-%m-%dT%H:%M")
        assert row["art_type"] == "2D Art" and row["art_type_tid"] == 9
        assert json.loads(row["tags"]) == page.tags
        assert [(x["name"], x["url"]) for x in json.loads(row["licenses"])] == page.licenses
        assert row["attribution"] == page.attribution
        assert row["favorites"] == page.favorites
        assert [c["title"] for c in json.loads(row["collections"])] == [t for t, _ in page.collections]
        assert len(json.loads(row["previews"])) == len(page.previews)
        files = conn.execute(
            "SELECT f.* FROM files f JOIN page_files pf ON pf.file_id = f.id WHERE pf.page_id = ? ORDER BY pf.position",
            (row["id"],),
        ).fetchall()
        assert [f["url"] for f in files] == [base + f.path for f in page.files]
        for stored, original in zip(files, page.files, strict=True):
            assert stored["state"] == "done"
            assert stored["sha256"] == hashlib.sha256(original.data).hexdigest()
            assert stored["size"] == stored["declared_length"] == len(original.data)
            assert stored["fid"] == original.fid and stored["mime"] == original.mime
            blob = tmp_path / "blobs" / stored["sha256"][:2] / stored["sha256"][2:4] / stored["sha256"]
            assert blob.read_bytes() == original.data


def test_faults_are_retried_or_recorded_and_the_crawl_goes_on(tmp_path: Path) -> None:
    pages = two_d(make_pages(10))
    flaky, missing, slow, cut = pages[0], pages[1].files[0], pages[2], pages[3].files[0]
    with OgaSite(pages) as site:
        site.fail_once(flaky.path, 503, retry_after=0)
        site.fail_always(missing.path, 404)
        site.slow(slow.path, 1.5)
        site.truncate(cut.path, times=1)
        base = site.base_url
        code, out = crawl(site, tmp_path, "--timeout", "0.5", "--retries", "1")
        assert code == 0, out
        assert site.count(flaky.path, status=503) == 1
        assert site.count(cut.path, completed_only=False) == 2  # truncated, then retried in full
    conn = db(tmp_path)

    def state(table: str, path: str) -> tuple[str, str | None]:
        row = conn.execute(f"SELECT state, error FROM {table} WHERE url = ?", (base + path,)).fetchone()
        return row["state"], row["error"]

    assert state("art_pages", flaky.path) == ("done", None)
    assert state("files", cut.path) == ("done", None)
    st, err = state("files", missing.path)
    assert st == "failed" and "HTTP 404" in err
    st, err = state("art_pages", slow.path)
    assert st == "error" and "timed out" in err
    done = conn.execute("SELECT COUNT(*) FROM art_pages WHERE state = 'done'").fetchone()[0]
    assert done == len(pages) - 1

    status = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "status", "--json"])
    info = json.loads(status.output)
    assert {(e["kind"], e["url"]) for e in info["errors"]} == {
        ("file", base + missing.path),
        ("page", base + slow.path),
    }
    assert info["counts"]["art_pages"]["error"] == 1


def test_errors_are_retried_on_the_next_run(tmp_path: Path) -> None:
    pages = two_d(make_pages(4))
    with OgaSite(pages) as site:
        site.fail_always(pages[0].path, 500)
        crawl(site, tmp_path, "--retries", "0")
        assert dump(tmp_path)["pages"][0]["state"] in ("error", "done")
        site.clear_faults()
        code, out = crawl(site, tmp_path)
        assert code == 0, out
    states = {p["url"]: p["state"] for p in dump(tmp_path)["pages"]}
    assert set(states.values()) == {"done"}


def test_robots_disallow_and_crawl_delay_are_obeyed(tmp_path: Path) -> None:
    pages = two_d(make_pages(5))
    secret = pages[1]
    robots = f"User-agent: *\nCrawl-delay: 0.25\nDisallow: {secret.path}\n"
    with OgaSite(pages, robots=robots) as site:
        code, out = crawl(
            site, tmp_path, "--items-per-page", "5", "--backoff", "0.01", "--concurrency", "3", fast=False
        )
        assert code == 0, out
        assert site.count(secret.path, completed_only=False) == 0
        stamps = [r.time for r in site.requests if r.path != "/robots.txt"]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 8
    assert min(gaps) >= 0.2  # one global interval, even with three workers
    row = db(tmp_path).execute("SELECT state, error FROM art_pages WHERE url LIKE ?", (f"%{secret.path}",)).fetchone()
    assert row["state"] == "failed" and "robots.txt disallows" in row["error"]


def test_unreachable_robots_means_no_crawl(tmp_path: Path) -> None:
    with OgaSite(two_d(make_pages(3))) as site:
        site.robots_status = 503
        code, out = crawl(site, tmp_path, "--retries", "1")
        assert code != 0
        assert "robots.txt" in out and "unreachable" in out
        assert all(r.path == "/robots.txt" for r in site.requests)


def test_robots_txt_is_cached_between_runs(tmp_path: Path) -> None:
    with OgaSite(two_d(make_pages(3))) as site:
        crawl(site, tmp_path)
        crawl(site, tmp_path)
        assert site.count("/robots.txt") == 1


def test_recrawl_uses_conditional_get_and_downloads_nothing_again(tmp_path: Path) -> None:
    pages = two_d(make_pages(8))
    with OgaSite(pages) as site:
        assert crawl(site, tmp_path)[0] == 0
        before = dump(tmp_path)
        first = len(site.requests)
        code, out = crawl(site, tmp_path, "--full")
        assert code == 0, out
        again = [r for r in site.requests[first:] if r.path != "/robots.txt"]
        assert again and all(r.status == 304 for r in again), [(r.path, r.status) for r in again]
        assert all("if-none-match" in r.headers or "if-modified-since" in r.headers for r in again)
        n_files = sum(len(p.files) for p in pages)
        assert sum(1 for r in again if "/sites/default/files/" in r.path) == n_files
    assert dump(tmp_path) == before


def test_incremental_recrawl_stops_at_known_pages_and_picks_up_new_art(tmp_path: Path) -> None:
    pages = two_d(make_pages(14))
    with OgaSite(pages) as site:
        assert crawl(site, tmp_path)[0] == 0
        newest = SitePage(
            slug="brand-new-sprite",
            node_id=99999,
            title="Brand New Sprite",
            author="Newcomer",
            post_date=datetime(2030, 1, 1, 12, 0),
            files=[SiteFile("new hero.png", pages[0].files[0].data, fid=999990)],
        )
        site.pages.insert(0, newest)
        first = len(site.requests)
        code, out = crawl(site, tmp_path)
        assert code == 0, out
        listing_requests = [r for r in site.requests[first:] if r.path.startswith("/art-search-advanced")]
        assert len(listing_requests) == 2  # page 0 (new art), page 1 (all known): stop
        content = [unquote(r.path) for r in site.requests[first:] if r.path.startswith("/content/")]
        assert content == [newest.path]
    row = db(tmp_path).execute("SELECT * FROM art_pages WHERE node_id = 99999").fetchone()
    assert row["title"] == "Brand New Sprite" and row["state"] == "done"


def test_small_runs_with_max_pages_and_max_items(tmp_path: Path) -> None:
    with OgaSite(two_d(make_pages(20))) as site:
        code, out = crawl(site, tmp_path, "--max-pages", "1", "--max-items", "3")
        assert code == 0, out
        assert site.count("/art-search-advanced") == 1
        assert site.count("/content/") == 3
    conn = db(tmp_path)
    assert conn.execute("SELECT COUNT(*) FROM art_pages WHERE state = 'done'").fetchone()[0] == 3
    assert conn.execute("SELECT COUNT(*) FROM art_pages").fetchone()[0] == 5  # listed, not yet fetched


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    pages = two_d(make_pages(3))
    with OgaSite(pages) as site:
        code, _ = crawl(site, tmp_path, "--max-file-bytes", "100")
        assert code == 0
    errors = db(tmp_path).execute("SELECT error FROM files WHERE state = 'failed'").fetchall()
    assert errors and all("limit" in e["error"] for e in errors)


def test_kill_and_resume_gives_the_same_catalog_without_redownloads(tmp_path: Path) -> None:
    pages = two_d(make_pages(24))
    with OgaSite(pages, response_delay=0.01) as site:
        reference = tmp_path / "reference"
        assert crawl(site, reference)[0] == 0

        killed = tmp_path / "killed"
        mark = len(site.requests)
        env = {**os.environ, "OGASEARCH_DATA_DIR": str(killed)}
        cmd = [sys.executable, "-m", "ogasearch", "crawl", "--base-url", site.base_url, *FAST]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done_files = [r for r in site.requests[mark:] if "/sites/default/files/" in r.path and r.completed]
            if len(done_files) >= 8:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        stored = {r["url"] for r in db(killed).execute("SELECT url FROM files WHERE state = 'done'").fetchall()}
        assert 0 < len(stored) < sum(len(p.files) for p in pages), "kill came too early or too late"
        resume_mark = len(site.requests)

        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert "(resumed)" in resumed.stdout
        assert "art pages: " in resumed.stderr  # plain progress lines when not on a terminal
        again = {site.base_url + r.path for r in site.requests[resume_mark:]}
        assert not stored & again, "a file stored before the kill was downloaded again"
        served = [r.path for r in site.requests[resume_mark:] if "/sites/default/files/" in r.path]
        assert served and len(served) == len(set(served))
        all_files = {r["url"] for r in db(killed).execute("SELECT url FROM files").fetchall()}
        assert {site.base_url + path for path in served} <= all_files  # same URL spelling as stored
    assert dump(killed) == dump(reference)
    assert not list((killed / "blobs" / "tmp").iterdir())

"""The catalog: one SQLite file holding every entity and its stage state.

All SQL of the project lives here. The schema is versioned with
`PRAGMA user_version` and upgraded by numbered migrations; a database written by
a newer version is refused rather than corrupted. WAL mode lets readers (status,
search) run while a stage writes. Each stage records its result in the same
transaction that marks the work done, so a killed process loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ogasearch.crawl.oga import ArtPage, FileLink, ListingEntry
from ogasearch.errors import CatalogError
from ogasearch.ingest.records import FileResult

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    # 1: crawl entities
    """
    CREATE TABLE crawl_runs (
        id INTEGER PRIMARY KEY,
        base_url TEXT NOT NULL,
        art_types TEXT NOT NULL,
        full INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE listing_pages (
        url TEXT PRIMARY KEY,
        art_type_tid INTEGER NOT NULL,
        page INTEGER NOT NULL,
        run_id INTEGER,
        state TEXT NOT NULL DEFAULT 'pending',
        error TEXT,
        fetched_at REAL,
        etag TEXT,
        last_modified TEXT,
        body_sha256 TEXT,
        entries INTEGER,
        total INTEGER,
        last_page INTEGER,
        known INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE art_pages (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        node_id INTEGER,
        title TEXT,
        author TEXT,
        author_url TEXT,
        submitter TEXT,
        submitter_url TEXT,
        post_date TEXT,
        posted_at TEXT,
        art_type TEXT,
        art_type_tid INTEGER,
        tags TEXT NOT NULL DEFAULT '[]',
        licenses TEXT NOT NULL DEFAULT '[]',
        attribution TEXT,
        description TEXT,
        favorites INTEGER,
        collections TEXT NOT NULL DEFAULT '[]',
        previews TEXT NOT NULL DEFAULT '[]',
        listing_title TEXT,
        listing_thumb TEXT,
        seen_run INTEGER,
        attempt_run INTEGER,
        state TEXT NOT NULL DEFAULT 'pending',
        error TEXT,
        fetched_at REAL,
        etag TEXT,
        last_modified TEXT,
        html_sha256 TEXT
    );
    CREATE INDEX art_pages_state ON art_pages(state);
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        name TEXT,
        mime TEXT,
        declared_length INTEGER,
        fid INTEGER,
        sha256 TEXT,
        size INTEGER,
        content_type TEXT,
        attempt_run INTEGER,
        state TEXT NOT NULL DEFAULT 'pending',
        error TEXT,
        fetched_at REAL,
        etag TEXT,
        last_modified TEXT
    );
    CREATE INDEX files_state ON files(state);
    CREATE TABLE page_files (
        page_id INTEGER NOT NULL REFERENCES art_pages(id),
        file_id INTEGER NOT NULL REFERENCES files(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (page_id, file_id)
    );
    CREATE INDEX page_files_file ON page_files(file_id);
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mime TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE robots (
        origin TEXT PRIMARY KEY,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        fetched_at REAL NOT NULL
    );
    """,
    # 2: ingest entities (images, items) and the ingest state of files
    """
    ALTER TABLE files ADD COLUMN ingest_state TEXT NOT NULL DEFAULT 'pending';
    ALTER TABLE files ADD COLUMN ingest_error TEXT;
    ALTER TABLE files ADD COLUMN kind TEXT;
    CREATE INDEX files_ingest ON files(ingest_state);
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id),
        archive_path TEXT NOT NULL,
        frame INTEGER NOT NULL,
        blob_sha256 TEXT,
        format TEXT,
        width INTEGER,
        height INTEGER,
        mode TEXT,
        scale INTEGER,
        box TEXT,
        pixel_sha256 TEXT,
        phash INTEGER,
        sheet_kind TEXT,
        grid TEXT,
        state TEXT NOT NULL,
        error TEXT,
        UNIQUE (file_id, archive_path, frame)
    );
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        x0 INTEGER,
        y0 INTEGER,
        x1 INTEGER,
        y1 INTEGER,
        pixel_sha256 TEXT NOT NULL,
        phash INTEGER NOT NULL
    );
    CREATE INDEX items_image ON items(image_id);
    CREATE INDEX items_pixel_sha256 ON items(pixel_sha256);
    """,
    # 3: vectors per item and model; full-text search over images
    """
    CREATE TABLE embeddings (
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        vector BLOB,
        PRIMARY KEY (item_id, model)
    );
    CREATE VIRTUAL TABLE image_text USING fts5(
        title, tags, author, description, path, tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

# States a row can be in; "failed" is a permanent failure (404, too large, disallowed) that
# only a full crawl retries, 'error' is retried on the next run.
PENDING, DONE, ERROR, FAILED = "pending", "done", "error", "failed"

_PAGE_FIELDS = (
    "node_id",
    "title",
    "author",
    "author_url",
    "submitter",
    "submitter_url",
    "post_date",
    "posted_at",
    "art_type",
    "art_type_tid",
    "attribution",
    "description",
    "favorites",
)
_PAGE_JSON_FIELDS = ("licenses", "collections", "previews")


class Catalog:
    """Owns the SQLite connection and every query."""

    def __init__(self, path: Path, *, threads: bool = False) -> None:
        """`threads`: the web server's worker threads share this connection. That is safe for its reads, which
        are single autocommit statements, because SQLite is built serialized (sqlite3.threadsafety == 3)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if threads and sqlite3.threadsafety != 3:
            raise CatalogError("this SQLite build cannot share a connection between threads")
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=not threads)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"cannot open catalog {path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"catalog {self.path} has schema version {version}, newer than this program's "
                f"{SCHEMA_VERSION}; upgrade ogasearch"
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[number]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- crawl runs ---------------------------------------------------------

    def start_run(self, base_url: str, art_types: list[int], full: bool) -> tuple[int, bool]:
        """Resume the last run if it did not finish with the same parameters, else start one.

        Returns (run id, resumed).
        """
        key = ",".join(map(str, art_types))
        row = self.db.execute("SELECT * FROM crawl_runs ORDER BY id DESC LIMIT 1").fetchone()
        if (
            row is not None
            and row["finished_at"] is None
            and row["base_url"] == base_url
            and row["art_types"] == key
            and bool(row["full"]) == full
        ):
            return row["id"], True
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO crawl_runs (base_url, art_types, full, started_at) VALUES (?, ?, ?, ?)",
                (base_url, key, int(full), time.time()),
            )
        return int(cur.lastrowid or 0), False

    def finish_run(self, run_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE crawl_runs SET finished_at = ? WHERE id = ?", (time.time(), run_id))

    def last_run(self) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM crawl_runs ORDER BY id DESC LIMIT 1").fetchone()

    # -- robots.txt -----------------------------------------------------------

    def get_robots(self, origin: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM robots WHERE origin = ?", (origin,)).fetchone()

    def put_robots(self, origin: str, status: int, body: str, fetched_at: float) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO robots (origin, status, body, fetched_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(origin) DO UPDATE SET status=excluded.status, body=excluded.body, "
                "fetched_at=excluded.fetched_at",
                (origin, status, body, fetched_at),
            )

    # -- listing pages --------------------------------------------------------

    def get_listing(self, url: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM listing_pages WHERE url = ?", (url,)).fetchone()

    def record_listing(
        self,
        url: str,
        *,
        tid: int,
        page: int,
        run_id: int,
        etag: str | None,
        last_modified: str | None,
        body_sha256: str | None,
        body_size: int | None,
        entries: list[ListingEntry] | None,
        total: int | None,
        last_page: int | None,
        known: bool,
    ) -> None:
        """Store a fetched listing page and the art pages it lists, in one transaction.

        `entries` is None for a 304 (nothing new to store). `known` marks a page
        whose entries were all already in the catalog.
        """
        now = time.time()
        with self.transaction():
            if body_sha256 is not None and body_size is not None:
                self._add_blob(body_sha256, body_size, "text/html", now)
            for entry in entries or ():
                self.db.execute(
                    "INSERT INTO art_pages (url, listing_title, listing_thumb, seen_run) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(url) DO UPDATE SET listing_title=excluded.listing_title, "
                    "listing_thumb=excluded.listing_thumb, seen_run=excluded.seen_run",
                    (entry.url, entry.title, entry.thumb_url, run_id),
                )
            self.db.execute(
                "INSERT INTO listing_pages (url, art_type_tid, page, run_id, state, error, fetched_at, etag, "
                "last_modified, body_sha256, entries, total, last_page, known) "
                "VALUES (?, ?, ?, ?, 'done', NULL, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(url) DO UPDATE SET run_id=excluded.run_id, state='done', error=NULL, "
                "fetched_at=excluded.fetched_at, etag=COALESCE(excluded.etag, etag), "
                "last_modified=COALESCE(excluded.last_modified, last_modified), "
                "body_sha256=COALESCE(excluded.body_sha256, body_sha256), "
                "entries=COALESCE(excluded.entries, entries), total=COALESCE(excluded.total, total), "
                "last_page=COALESCE(excluded.last_page, last_page), known=excluded.known",
                (
                    url,
                    tid,
                    page,
                    run_id,
                    now,
                    etag,
                    last_modified,
                    body_sha256,
                    None if entries is None else len(entries),
                    total,
                    last_page,
                    int(known),
                ),
            )

    def listing_error(self, url: str, *, tid: int, page: int, run_id: int, error: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO listing_pages (url, art_type_tid, page, run_id, state, error, fetched_at) "
                "VALUES (?, ?, ?, ?, 'error', ?, ?) ON CONFLICT(url) DO UPDATE SET run_id=excluded.run_id, "
                "state='error', error=excluded.error, fetched_at=excluded.fetched_at",
                (url, tid, page, run_id, error, time.time()),
            )

    def known_urls(self, urls: list[str]) -> set[str]:
        """Which of these art page URLs are already fetched."""
        if not urls:
            return set()
        marks = ",".join("?" * len(urls))
        rows = self.db.execute(f"SELECT url FROM art_pages WHERE state = 'done' AND url IN ({marks})", urls).fetchall()
        return {r["url"] for r in rows}

    # -- art pages ------------------------------------------------------------

    def pages_to_fetch(self, run_id: int, full: bool, limit: int | None) -> list[sqlite3.Row]:
        """Art pages this run still has to fetch: new or failed ones, and in a full
        run every page listed in it (re-validated with a conditional GET)."""
        sql = (
            "SELECT * FROM art_pages WHERE (attempt_run IS NULL OR attempt_run != :run) AND "
            "(state IN ('pending', 'error') OR (:full AND seen_run = :run)) ORDER BY id"
        )
        rows = self.db.execute(sql, {"run": run_id, "full": int(full)}).fetchall()
        return rows if limit is None else rows[:limit]

    def count_attempted_pages(self, run_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM art_pages WHERE attempt_run = ?", (run_id,)).fetchone()[0]

    def store_page(
        self,
        page_id: int,
        page: ArtPage,
        *,
        run_id: int,
        etag: str | None,
        last_modified: str | None,
        html_sha256: str,
        html_size: int,
    ) -> None:
        """Store a parsed art page and its file links, marking the page done."""
        values: dict[str, Any] = {name: getattr(page, name) for name in _PAGE_FIELDS}
        for name in _PAGE_JSON_FIELDS:
            values[name] = json.dumps([asdict(x) for x in getattr(page, name)], ensure_ascii=False)
        values["tags"] = json.dumps(page.tags, ensure_ascii=False)
        sets = ", ".join(f"{name} = :{name}" for name in values)
        with self.transaction():
            self._add_blob(html_sha256, html_size, "text/html", time.time())
            self.db.execute(
                f"UPDATE art_pages SET {sets}, state='done', error=NULL, attempt_run=:run, fetched_at=:now, "
                "etag=:etag, last_modified=:lm, html_sha256=:sha WHERE id=:id",
                {
                    **values,
                    "run": run_id,
                    "now": time.time(),
                    "etag": etag,
                    "lm": last_modified,
                    "sha": html_sha256,
                    "id": page_id,
                },
            )
            self.db.execute("DELETE FROM page_files WHERE page_id = ?", (page_id,))
            for position, link in enumerate(page.files):
                file_id = self._upsert_file(link)
                self.db.execute(
                    "INSERT OR IGNORE INTO page_files (page_id, file_id, position) VALUES (?, ?, ?)",
                    (page_id, file_id, position),
                )

    def _upsert_file(self, link: FileLink) -> int:
        self.db.execute(
            "INSERT INTO files (url, name, mime, declared_length, fid) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(url) DO UPDATE SET name=excluded.name, mime=excluded.mime, "
            "declared_length=excluded.declared_length, fid=excluded.fid",
            (link.url, link.name, link.mime, link.length, link.fid),
        )
        return self.db.execute("SELECT id FROM files WHERE url = ?", (link.url,)).fetchone()[0]

    def page_unchanged(self, page_id: int, run_id: int) -> None:
        """A 304 on re-validation: the stored metadata stands."""
        with self.transaction():
            self.db.execute(
                "UPDATE art_pages SET attempt_run = ?, fetched_at = ? WHERE id = ?",
                (run_id, time.time(), page_id),
            )

    def page_error(self, page_id: int, run_id: int, error: str, *, permanent: bool) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE art_pages SET state = ?, error = ?, attempt_run = ?, fetched_at = ? WHERE id = ?",
                (FAILED if permanent else ERROR, error, run_id, time.time(), page_id),
            )

    # -- files ----------------------------------------------------------------

    def files_to_fetch(self, run_id: int, full: bool, page_id: int | None = None) -> list[sqlite3.Row]:
        """Files still to download in this run (for one page, or all); a full run
        re-validates the done files of pages it fetched."""
        sql = (
            "SELECT DISTINCT f.* FROM files f JOIN page_files pf ON pf.file_id = f.id "
            "JOIN art_pages p ON p.id = pf.page_id "
            "WHERE (f.attempt_run IS NULL OR f.attempt_run != :run) AND "
            "(f.state IN ('pending', 'error') OR (:full AND p.attempt_run = :run)) "
            "AND (:page IS NULL OR p.id = :page) ORDER BY p.id, pf.position"
        )
        return self.db.execute(sql, {"run": run_id, "full": int(full), "page": page_id}).fetchall()

    def store_file(
        self,
        file_id: int,
        *,
        run_id: int,
        sha256: str,
        size: int,
        content_type: str | None,
        etag: str | None,
        last_modified: str | None,
    ) -> None:
        now = time.time()
        with self.transaction():
            self._add_blob(sha256, size, content_type, now)
            self.db.execute(
                "UPDATE files SET sha256=?, size=?, content_type=?, etag=?, last_modified=?, state='done', "
                "error=NULL, attempt_run=?, fetched_at=?, "
                "ingest_state = CASE WHEN sha256 IS ? THEN ingest_state ELSE 'pending' END WHERE id=?",
                (sha256, size, content_type, etag, last_modified, run_id, now, sha256, file_id),
            )

    def _add_blob(self, sha256: str, size: int, mime: str | None, now: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, mime, created_at) VALUES (?, ?, ?, ?)",
            (sha256, size, mime, now),
        )

    def file_unchanged(self, file_id: int, run_id: int) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE files SET attempt_run = ?, fetched_at = ? WHERE id = ?",
                (run_id, time.time(), file_id),
            )

    def file_error(self, file_id: int, run_id: int, error: str, *, permanent: bool) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE files SET state = ?, error = ?, attempt_run = ?, fetched_at = ? WHERE id = ?",
                (FAILED if permanent else ERROR, error, run_id, time.time(), file_id),
            )

    # -- local files ----------------------------------------------------------

    def register_local(self, url: str, name: str, sha256: str, size: int) -> bool:
        """Record a local file (url = its file:// URI); True when it is new or changed."""
        row = self.db.execute("SELECT sha256 FROM files WHERE url = ?", (url,)).fetchone()
        if row is not None and row["sha256"] == sha256:
            return False
        now = time.time()
        with self.transaction():
            self._add_blob(sha256, size, None, now)
            self.db.execute(
                "INSERT INTO files (url, name, sha256, size, state, fetched_at, ingest_state) "
                "VALUES (?, ?, ?, ?, 'done', ?, 'pending') ON CONFLICT(url) DO UPDATE SET name=excluded.name, "
                "sha256=excluded.sha256, size=excluded.size, state='done', fetched_at=excluded.fetched_at, "
                "ingest_state='pending', ingest_error=NULL",
                (url, name, sha256, size, now),
            )
        return True

    # -- ingest -----------------------------------------------------------------

    def files_to_ingest(self, retry_errors: bool = False) -> list[sqlite3.Row]:
        states = ("pending", "error") if retry_errors else ("pending",)
        marks = ",".join("?" * len(states))
        return self.db.execute(
            f"SELECT id, url, name, sha256 FROM files WHERE state = 'done' AND sha256 IS NOT NULL "
            f"AND ingest_state IN ({marks}) ORDER BY id",
            states,
        ).fetchall()

    def store_ingest(self, result: FileResult) -> None:
        """Replace a file's images and items with the ingest result, in one transaction."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM items WHERE image_id IN (SELECT id FROM images WHERE file_id = ?)", (result.file_id,)
            )
            self.db.execute("DELETE FROM images WHERE file_id = ?", (result.file_id,))
            now = time.time()
            for image in result.images:
                if image.blob_sha256 and image.blob_size is not None:
                    self._add_blob(image.blob_sha256, image.blob_size, image.format, now)
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO images (file_id, archive_path, frame, blob_sha256, format, width, height, "
                    "mode, scale, box, pixel_sha256, phash, sheet_kind, grid, state, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        result.file_id,
                        image.archive_path,
                        image.frame,
                        image.blob_sha256,
                        image.format,
                        image.width,
                        image.height,
                        image.mode,
                        image.scale,
                        None if image.box is None else json.dumps(image.box),
                        image.pixel_sha256,
                        image.phash,
                        image.sheet_kind,
                        None if image.grid is None else json.dumps(image.grid),
                        ERROR if image.error else DONE,
                        image.error,
                    ),
                )
                if not cur.rowcount:
                    continue
                self.db.executemany(
                    "INSERT INTO items (image_id, x0, y0, x1, y1, pixel_sha256, phash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (cur.lastrowid, *(item.bbox or (None, None, None, None)), item.pixel_sha256, item.phash)
                        for item in image.items
                    ],
                )
            self.db.execute(
                "UPDATE files SET kind = ?, ingest_state = ?, ingest_error = ? WHERE id = ?",
                (result.kind, ERROR if result.error else DONE, result.error, result.file_id),
            )

    def item(self, item_id: int) -> dict[str, Any] | None:
        """An item with its full provenance: image, file, archive path and OGA page(s)."""
        row = self.db.execute(
            "SELECT it.id AS item_id, it.x0, it.y0, it.x1, it.y1, it.pixel_sha256, it.phash, im.id AS image_id, "
            "im.archive_path, im.frame, im.width, im.height, im.scale, im.format, im.blob_sha256, im.sheet_kind, "
            "f.id AS file_id, f.url AS file_url, f.name AS file_name "
            "FROM items it JOIN images im ON im.id = it.image_id JOIN files f ON f.id = im.file_id WHERE it.id = ?",
            (item_id,),
        ).fetchone()
        if row is None:
            return None
        info = dict(row)
        bbox = (row["x0"], row["y0"], row["x1"], row["y1"])
        info["bbox"] = None if row["x0"] is None else list(bbox)
        for key in ("x0", "y0", "x1", "y1"):
            del info[key]
        pages = self.db.execute(
            "SELECT p.url, p.title, p.author, p.licenses, p.attribution FROM page_files pf "
            "JOIN art_pages p ON p.id = pf.page_id WHERE pf.file_id = ? ORDER BY p.id",
            (row["file_id"],),
        ).fetchall()
        info["pages"] = [{**dict(p), "licenses": json.loads(p["licenses"])} for p in pages]
        return info

    # -- embeddings -------------------------------------------------------------

    _ITEM_SOURCE = (
        "SELECT it.id, it.image_id, it.x0, it.y0, it.x1, it.y1, im.blob_sha256, im.frame, im.archive_path, "
        "f.name AS file_name FROM items it JOIN images im ON im.id = it.image_id JOIN files f ON f.id = im.file_id "
    )

    def items_to_embed(self, model: str, limit: int) -> list[sqlite3.Row]:
        """Items with no vector (or error) for this model yet, grouped by image so each is decoded once."""
        return self.db.execute(
            self._ITEM_SOURCE + "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = it.id AND e.model = ?) "
            "ORDER BY it.image_id, it.id LIMIT ?",
            (model, limit),
        ).fetchall()

    def item_source_rows(self, ids: list[int]) -> list[sqlite3.Row]:
        """Where to read the pixels of these items (blob, frame, box)."""
        marks = ",".join("?" * len(ids))
        return self.db.execute(self._ITEM_SOURCE + f"WHERE it.id IN ({marks}) ORDER BY it.image_id", ids).fetchall()

    def count_items_to_embed(self, model: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM items it WHERE NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.item_id = it.id AND e.model = ?)",
            (model,),
        ).fetchone()[0]

    def store_embeddings(
        self, model: str, vectors: list[tuple[int, bytes]], errors: Sequence[tuple[int, str]] = ()
    ) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings (item_id, model, state, error, vector) "
                "VALUES (?, ?, 'done', NULL, ?)",
                [(item_id, model, blob) for item_id, blob in vectors],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings (item_id, model, state, error, vector) "
                "VALUES (?, ?, 'error', ?, NULL)",
                [(item_id, model, message) for item_id, message in errors],
            )

    def embedded_ids(self, model: str) -> list[int]:
        rows = self.db.execute(
            "SELECT item_id FROM embeddings WHERE model = ? AND state = 'done' ORDER BY item_id", (model,)
        ).fetchall()
        return [r[0] for r in rows]

    def vectors(self, model: str, ids: list[int]) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            out += [
                (r[0], r[1])
                for r in self.db.execute(
                    "SELECT item_id, vector FROM embeddings WHERE model = ? AND state = 'done' "
                    f"AND item_id IN ({marks})",
                    (model, *chunk),
                )
            ]
        return out

    def embedding_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for r in self.db.execute("SELECT model, state, COUNT(*) AS n FROM embeddings GROUP BY model, state"):
            counts.setdefault(r["model"], {})[r["state"]] = r["n"]
        return counts

    # -- search support -----------------------------------------------------------

    def rebuild_text(self) -> int:
        """Refill the full-text index from page metadata, file names and archive paths."""
        with self.transaction():
            self.db.execute("DELETE FROM image_text")
            self.db.execute(
                "INSERT INTO image_text (rowid, title, tags, author, description, path) "
                "SELECT im.id, COALESCE(group_concat(p.title, ' '), ''), "
                "COALESCE(group_concat((SELECT group_concat(value, ' ') FROM json_each(p.tags)), ' '), ''), "
                "COALESCE(group_concat(p.author, ' '), ''), COALESCE(group_concat(p.description, ' '), ''), "
                "COALESCE(f.name, '') || ' ' || im.archive_path "
                "FROM images im JOIN files f ON f.id = im.file_id "
                "LEFT JOIN page_files pf ON pf.file_id = f.id LEFT JOIN art_pages p ON p.id = pf.page_id "
                "WHERE im.state = 'done' GROUP BY im.id"
            )
        return self.db.execute("SELECT COUNT(*) FROM image_text").fetchone()[0]

    def text_search(self, match: str, limit: int) -> list[tuple[int, float]]:
        """(whole-image item id, bm25 score: lower is better) for an FTS5 MATCH expression."""
        rows = self.db.execute(
            "SELECT it.id, bm25(image_text, 10.0, 5.0, 3.0, 1.0, 4.0) AS rank FROM image_text "
            "JOIN items it ON it.image_id = image_text.rowid AND it.x0 IS NULL "
            "WHERE image_text MATCH ? ORDER BY rank, it.id LIMIT ?",
            (match, limit),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def first_frames(self) -> list[sqlite3.Row]:
        """(file url, blob sha256, archive path, file name) of every decoded image's first frame."""
        return self.db.execute(
            "SELECT f.url, im.blob_sha256, im.archive_path, f.name FROM images im JOIN files f ON f.id = im.file_id "
            "WHERE im.state = 'done' AND im.frame = (SELECT MIN(i2.frame) FROM images i2 "
            "WHERE i2.file_id = im.file_id AND i2.archive_path = im.archive_path) ORDER BY im.id"
        ).fetchall()

    def items_with_hash(self, sha256s: list[str]) -> list[int]:
        marks = ",".join("?" * len(sha256s))
        return [
            r[0] for r in self.db.execute(f"SELECT id FROM items WHERE pixel_sha256 IN ({marks}) ORDER BY id", sha256s)
        ]

    def hash_table(self) -> tuple[list[int], list[int], list[str]]:
        """Every item's id, perceptual hash and pixel sha256 (for near-duplicate lookup in memory)."""
        rows = self.db.execute("SELECT id, phash, pixel_sha256 FROM items ORDER BY id").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def item_rows(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Result metadata for items: box, image, file, archive path and the first OGA page."""
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT it.id AS item_id, it.x0, it.y0, it.x1, it.y1, it.pixel_sha256, it.phash, "
                "im.id AS image_id, im.archive_path, im.frame, im.width, im.height, im.blob_sha256, "
                "f.id AS file_id, f.url AS file_url, f.name AS file_name, "
                "p.url AS page_url, p.title, p.author, p.licenses, p.attribution, p.art_type "
                "FROM items it JOIN images im ON im.id = it.image_id JOIN files f ON f.id = im.file_id "
                "LEFT JOIN page_files pf ON pf.file_id = f.id "
                "AND pf.page_id = (SELECT MIN(page_id) FROM page_files WHERE file_id = f.id) "
                f"LEFT JOIN art_pages p ON p.id = pf.page_id WHERE it.id IN ({marks})",
                chunk,
            ).fetchall()
            for r in rows:
                info = dict(r)
                info["licenses"] = json.loads(r["licenses"]) if r["licenses"] else []
                out[r["item_id"]] = info
        return out

    # -- status ---------------------------------------------------------------

    def items_stamp(self) -> tuple[int, int]:
        """(count, highest id) of items: changes when ingest adds or removes items (a server checks it)."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM items").fetchone()
        return int(row[0]), int(row[1])

    def license_names(self) -> list[str]:
        """Every licence name on a stored page, most used first (the choices of the licence filter)."""
        rows = self.db.execute(
            "SELECT json_extract(j.value, '$.name') AS name, COUNT(*) AS n FROM art_pages p, json_each(p.licenses) j "
            "WHERE p.licenses IS NOT NULL AND json_valid(p.licenses) GROUP BY name ORDER BY n DESC, name"
        ).fetchall()
        return [r["name"] for r in rows if r["name"]]

    def summary(self) -> dict[str, Any]:
        """What the about page shows: how much is searchable, and when the last crawl ran and finished."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM art_pages WHERE state = 'done') AS pages, "
            "(SELECT COUNT(*) FROM files WHERE state = 'done') AS files, "
            "(SELECT COUNT(*) FROM images WHERE state = 'done') AS images, "
            "(SELECT COUNT(*) FROM items WHERE x0 IS NULL) AS whole, "
            "(SELECT COUNT(*) FROM items WHERE x0 IS NOT NULL) AS tiles, "
            "(SELECT MAX(finished_at) FROM crawl_runs) AS last_crawl_finished, "
            "(SELECT MAX(started_at) FROM crawl_runs) AS last_crawl_started"
        ).fetchone()
        return dict(row)

    def status(self, max_errors: int = 50) -> dict[str, Any]:
        """Counts per entity and state, plus the recorded errors."""
        counts: dict[str, dict[str, int]] = {}
        for table in ("listing_pages", "art_pages", "files"):
            rows = self.db.execute(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state").fetchall()
            counts[table] = {r["state"]: r["n"] for r in rows}
        for table in ("images",):
            rows = self.db.execute(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state").fetchall()
            counts[table] = {r["state"]: r["n"] for r in rows}
        rows = self.db.execute(
            "SELECT ingest_state AS state, COUNT(*) AS n FROM files WHERE state = 'done' GROUP BY ingest_state"
        ).fetchall()
        counts["ingest"] = {r["state"]: r["n"] for r in rows}
        items = self.db.execute("SELECT COUNT(*) AS n, COUNT(x0) AS tiles FROM items").fetchone()
        counts["items"] = {"whole": items["n"] - items["tiles"], "tiles": items["tiles"]}
        for model, states in self.embedding_counts().items():
            counts[f"embeddings[{model}]"] = states
        blobs = self.db.execute("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM blobs").fetchone()
        counts["blobs"] = {"count": blobs["n"], "bytes": blobs["bytes"]}
        errors = []
        for table, kind in (("listing_pages", "listing"), ("art_pages", "page"), ("files", "file")):
            rows = self.db.execute(
                f"SELECT url, state, error FROM {table} WHERE state IN ('error', 'failed') ORDER BY url LIMIT ?",
                (max_errors,),
            ).fetchall()
            errors += [{"kind": kind, "url": r["url"], "state": r["state"], "error": r["error"]} for r in rows]
        rows = self.db.execute(
            "SELECT url, ingest_error FROM files WHERE ingest_state = 'error' ORDER BY url LIMIT ?", (max_errors,)
        ).fetchall()
        errors += [{"kind": "ingest", "url": r["url"], "state": "error", "error": r["ingest_error"]} for r in rows]
        rows = self.db.execute(
            "SELECT f.url, im.archive_path, im.error FROM images im JOIN files f ON f.id = im.file_id "
            "WHERE im.state = 'error' ORDER BY f.url, im.archive_path LIMIT ?",
            (max_errors,),
        ).fetchall()
        errors += [
            {"kind": "image", "url": r["url"], "path": r["archive_path"], "state": "error", "error": r["error"]}
            for r in rows
        ]
        run = self.last_run()
        last = None
        if run is not None:
            last = {
                "id": run["id"],
                "base_url": run["base_url"],
                "full": bool(run["full"]),
                "started_at": run["started_at"],
                "finished_at": run["finished_at"],
            }
        return {"schema_version": SCHEMA_VERSION, "counts": counts, "errors": errors, "last_crawl": last}


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (migrations hold no ';' inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]

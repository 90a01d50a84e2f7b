"""The `ogasearch` command: thin over the modules, errors as messages and exit codes."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ogasearch import __version__
from ogasearch.blobs import BlobStore
from ogasearch.catalog import Catalog
from ogasearch.config import SETTINGS, Config, load_config
from ogasearch.crawl.client import PoliteClient
from ogasearch.crawl.stages import Crawler, CrawlOptions
from ogasearch.crawl.urls import art_type_tid
from ogasearch.errors import OgasearchError
from ogasearch.ingest.stage import IngestReport, add_paths, ingest
from ogasearch.search import Filters
from ogasearch.searchable import IndexReport, make_searchable, open_engine, run_query

log = logging.getLogger("ogasearch")


def open_store(cfg: Config) -> tuple[Catalog, BlobStore]:
    return Catalog(cfg.catalog_path), BlobStore(cfg.blob_dir)


def _reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn project errors into a one-line message and their exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OgasearchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; run the same command again to resume", err=True)
            sys.exit(130)

    return wrapper


def _setting_options(names: tuple[str, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options generated from the settings table, so flags and docs never drift."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for setting in reversed([s for s in SETTINGS if s.name in names]):
            default = "" if setting.default is None else f" [default: {setting.default}]"
            func = click.option(
                f"--{setting.name.replace('_', '-')}",
                setting.name,
                type=setting.type,
                default=None,
                help=f"{setting.help}{default}",
            )(func)
        return func

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ogasearch")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (catalog + blobs). [env OGASEARCH_DATA_DIR; default ./ogasearch-data]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file. [env OGASEARCH_CONFIG; default <data-dir>/ogasearch.toml if present]",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, config_file: Path | None, verbose: int, quiet: bool) -> None:
    """Reverse image search for the pixel art on OpenGameArt.org."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx.obj = {"data_dir": data_dir, "config_file": config_file}


def _config(ctx: click.Context, **flags: Any) -> Config:
    return load_config({"data_dir": ctx.obj["data_dir"], **flags}, config_file=ctx.obj["config_file"])


@main.command()
@click.option(
    "--art-type",
    "art_type",
    multiple=True,
    help="Art type to crawl, by name ('2D Art', 'Texture', ...) or tid; repeatable. [default: 2D Art]",
)
@click.option("--full", is_flag=True, help="Page through every listing page and re-validate everything known.")
@click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Stop after N listing pages per type.")
@click.option("--max-items", type=click.IntRange(min=1), default=None, help="Fetch at most N art pages this run.")
@_setting_options(
    (
        "base_url",
        "contact",
        "delay",
        "min_interval",
        "concurrency",
        "timeout",
        "retries",
        "backoff",
        "backoff_max",
        "max_file_bytes",
        "max_page_bytes",
        "items_per_page",
    )
)
@click.pass_context
@_reports_errors
def crawl(
    ctx: click.Context,
    art_type: tuple[str, ...],
    full: bool,
    max_pages: int | None,
    max_items: int | None,
    **settings: Any,
) -> None:
    """Crawl OpenGameArt: listing pages, art pages and their files, politely and resumably."""
    if art_type:
        settings["art_types"] = ",".join(art_type)
    cfg = _config(ctx, **settings)
    tids = [art_type_tid(name) for name in cfg.art_type_list]
    if not cfg.contact:
        log.warning("no contact set (--contact or OGASEARCH_CONTACT): site operators cannot reach you")
    catalog, store = open_store(cfg)
    try:
        report = asyncio.run(_crawl(cfg, catalog, store, CrawlOptions(tids, full, max_pages, max_items)))
    finally:
        catalog.close()
    click.echo(
        f"crawl run {report.run_id}{' (resumed)' if report.resumed else ''}: "
        f"{report.listing_pages} listing pages ({report.listing_unchanged} unchanged), "
        f"{report.pages_fetched} art pages fetched, {report.pages_unchanged} unchanged, "
        f"{report.page_errors} errors; {report.files_downloaded} files downloaded "
        f"({report.bytes_downloaded} bytes), {report.files_unchanged} unchanged, {report.file_errors} errors"
    )


async def _crawl(cfg: Config, catalog: Catalog, store: BlobStore, opts: CrawlOptions) -> Any:
    client = PoliteClient(cfg, catalog, store)
    try:
        return await Crawler(cfg, catalog, store, client).run(opts)
    finally:
        await client.aclose()


INGEST_SETTINGS = (
    "workers",
    "max_archive_bytes",
    "max_member_bytes",
    "max_members",
    "max_ratio",
    "max_depth",
    "max_image_pixels",
    "max_frames",
    "max_tiles",
)


def _echo_ingest(report: IngestReport) -> None:
    click.echo(
        f"ingested {report.files} files ({report.file_errors} with errors): {report.images} images "
        f"({report.image_errors} undecodable), {report.items} items ({report.tiles} tiles)"
    )


@main.command(name="ingest")
@click.option("--retry-errors", is_flag=True, help="Ingest again the files whose ingest failed.")
@_setting_options(INGEST_SETTINGS)
@click.pass_context
@_reports_errors
def ingest_command(ctx: click.Context, retry_errors: bool, **settings: Any) -> None:
    """Unpack downloaded files, decode images, slice sheets: one item per image, frame and tile."""
    cfg = _config(ctx, **settings)
    catalog, store = open_store(cfg)
    try:
        _echo_ingest(ingest(cfg, catalog, store, retry_errors))
    finally:
        catalog.close()


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_setting_options(INGEST_SETTINGS)
@click.pass_context
@_reports_errors
def add(ctx: click.Context, paths: tuple[Path, ...], **settings: Any) -> None:
    """Index local image files, folders and archives (items link to the local path)."""
    cfg = _config(ctx, **settings)
    catalog, store = open_store(cfg)
    try:
        seen, changed = add_paths(catalog, store, list(paths))
        click.echo(f"found {seen} images and archives, {changed} new or changed")
        _echo_ingest(ingest(cfg, catalog, store))
        _echo_index(make_searchable(cfg, catalog, store))
    finally:
        catalog.close()


SEARCH_SETTINGS = ("model", "index_backend", "milvus_uri", "milvus_token", "embed_batch")
QUERY_SETTINGS = (
    "model",
    "index_backend",
    "milvus_uri",
    "milvus_token",
    "max_query_pixels",
    "fetch_max_bytes",
    "fetch_timeout",
    "fetch_allow_hosts",
)


def _echo_index(report: IndexReport) -> None:
    click.echo(
        f"[{report.model}] embedded {report.embedded} items ({report.embed_errors} errors); index +{report.added} "
        f"-{report.removed} = {report.size} vectors; {report.texts} images in full-text search"
    )


@main.command(name="index")
@_setting_options(SEARCH_SETTINGS)
@click.pass_context
@_reports_errors
def index_command(ctx: click.Context, **settings: Any) -> None:
    """Embed items that have no vector yet and bring the vector and text indexes up to date."""
    cfg = _config(ctx, **settings)
    catalog, store = open_store(cfg)
    try:
        _echo_index(make_searchable(cfg, catalog, store))
    finally:
        catalog.close()


@main.command()
@click.option("--full", is_flag=True, help="Crawl with --full (re-validate everything).")
@click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Stop after N listing pages per type.")
@click.option("--max-items", type=click.IntRange(min=1), default=None, help="Fetch at most N art pages this run.")
@_setting_options(("base_url", "contact", "delay", "concurrency", *INGEST_SETTINGS, *SEARCH_SETTINGS))
@click.pass_context
@_reports_errors
def update(ctx: click.Context, full: bool, max_pages: int | None, max_items: int | None, **settings: Any) -> None:
    """crawl → ingest → embed → index, incremental and resumable: a small crawl is searchable at once."""
    cfg = _config(ctx, **settings)
    tids = [art_type_tid(name) for name in cfg.art_type_list]
    catalog, store = open_store(cfg)
    try:
        report = asyncio.run(_crawl(cfg, catalog, store, CrawlOptions(tids, full, max_pages, max_items)))
        click.echo(
            f"crawl: {report.pages_fetched} art pages, {report.files_downloaded} files, "
            f"{report.page_errors + report.file_errors} errors"
        )
        _echo_ingest(ingest(cfg, catalog, store))
        _echo_index(make_searchable(cfg, catalog, store))
    finally:
        catalog.close()


@main.command()
@click.argument("query")
@click.option("--count", type=int, default=20, show_default=True, help="Results to show (at most 100).")
@click.option("--offset", type=int, default=0, show_default=True, help="Results to skip (paging).")
@click.option("--license", "license_", default=None, help="Only assets under a licence whose name contains this.")
@click.option("--art-type", default=None, help="Only assets of this art type, e.g. '2D Art'.")
@click.option(
    "--kind",
    type=click.Choice(["all", "whole", "tiles"]),
    default="all",
    show_default=True,
    help="Whole images, tiles or both.",
)
@click.option("--similar", is_flag=True, help="QUERY is an item id: more like this item.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@_setting_options(QUERY_SETTINGS)
@click.pass_context
@_reports_errors
def search(
    ctx: click.Context,
    query: str,
    count: int,
    offset: int,
    license_: str | None,
    art_type: str | None,
    kind: str,
    similar: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Search by image file, image URL (http/https), item id (--similar) or words."""
    cfg = _config(ctx, **settings)
    filters = Filters(license=license_, art_type=art_type, kind=kind)
    catalog, store = open_store(cfg)
    try:
        engine = open_engine(cfg, catalog, store)
        results = run_query(engine, cfg, query, similar=similar, count=count, offset=offset, filters=filters)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))
        return
    if not results:
        click.echo("no results")
    for rank, r in enumerate(results, start=offset + 1):
        where = r.archive_path + (f" {r.bbox}" if r.bbox else "")
        click.echo(
            f"{rank:3d}. {r.score:.3f} {r.match:7s} {r.title or '(local file)'} by {r.author or '?'} "
            f"[{', '.join(r.licenses) or 'licence unknown'}]\n      {r.file_url} {where}".rstrip()
            + (f"\n      {r.page_url}" if r.page_url else "")
        )


@main.command()
@_setting_options(("host", "port", "search_threads", "max_upload_bytes", "upload_store_bytes", *QUERY_SETTINGS))
@click.pass_context
@_reports_errors
def serve(ctx: click.Context, **settings: Any) -> None:
    """Run the web app and JSON API (search page at /, API docs at /docs)."""
    import uvicorn

    from ogasearch.web.app import create_app

    cfg = _config(ctx, **settings)
    if not cfg.catalog_path.is_file():
        log.warning("no catalog in %s yet: run `ogasearch add PATH` or `ogasearch update` first", cfg.data_dir)
    app = create_app(cfg)
    click.echo(f"serving {cfg.data_dir} on http://{cfg.host}:{cfg.port}/", err=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", proxy_headers=False)


@main.command()
@click.argument("item_id", type=int)
@click.pass_context
@_reports_errors
def item(ctx: click.Context, item_id: int) -> None:
    """Show one item as JSON: its image, box, file, archive path and OGA page(s)."""
    cfg = _config(ctx)
    catalog, _ = open_store(cfg)
    try:
        info = catalog.item(item_id)
    finally:
        catalog.close()
    if info is None:
        raise click.ClickException(f"no item {item_id}")
    click.echo(json.dumps(info, indent=2, ensure_ascii=False))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
@_reports_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts per entity and state, the last crawl, and recorded errors."""
    cfg = _config(ctx)
    catalog, _ = open_store(cfg)
    try:
        info = catalog.status()
    finally:
        catalog.close()
    info["data_dir"] = str(cfg.data_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"data dir: {cfg.data_dir}")
    for entity, counts in info["counts"].items():
        parts = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none"
        click.echo(f"{entity}: {parts}")
    run = info["last_crawl"]
    if run:
        state = "finished" if run["finished_at"] else "unfinished (run crawl again to resume)"
        click.echo(f"last crawl: run {run['id']} of {run['base_url']}, {state}")
    if info["errors"]:
        click.echo(f"errors ({len(info['errors'])}):")
        for err in info["errors"]:
            click.echo(f"  [{err['kind']}, {err['state']}] {err['url']}: {err['error']}")

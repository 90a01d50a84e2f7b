"""Settings: every limit and knob declared once, as data.

Each setting is resolved, highest precedence first, from a command-line flag, the
environment (`OGASEARCH_<NAME>`), a TOML file (`--config`, `OGASEARCH_CONFIG`, or
`ogasearch.toml` in the data dir) and finally its default. Declaring them as data
lets the CLI, the docs and the tests share one list.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ogasearch.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "ogasearch-data", str, "Directory holding the catalog and the blob store."),
    Setting("base_url", "https://opengameart.org", str, "Site to crawl (a mirror or a local test site)."),
    Setting("contact", "", str, "Contact (e-mail or URL) sent in the User-Agent so site admins can reach you."),
    Setting(
        "min_interval",
        1.0,
        float,
        "Minimum seconds between requests to a host when robots.txt sets no Crawl-delay.",
    ),
    Setting(
        "delay",
        None,
        float,
        "Seconds between requests, overriding robots.txt Crawl-delay (only for mirrors you control).",
    ),
    Setting("concurrency", 2, int, "Requests in flight at once (all share one rate limit per host)."),
    Setting("timeout", 60.0, float, "Seconds before a request with no response bytes is abandoned."),
    Setting("retries", 4, int, "Retries after a timeout, 429 or 5xx before the error is recorded."),
    Setting("backoff", 2.0, float, "Base of the exponential backoff between retries, in seconds."),
    Setting("backoff_max", 300.0, float, "Longest wait between retries (also caps Retry-After), in seconds."),
    Setting("max_file_bytes", 512 * 1024**2, int, "Largest file downloaded; bigger ones are recorded as errors."),
    Setting("max_page_bytes", 16 * 1024**2, int, "Largest HTML page accepted."),
    Setting("robots_ttl", 86400.0, float, "Seconds a fetched robots.txt is trusted (at most 24 h)."),
    Setting("items_per_page", 144, int, "Listing page size requested from the art search."),
    Setting("art_types", "2D Art", str, "Comma-separated art types to crawl, e.g. '2D Art,Texture'."),
    Setting("workers", 0, int, "Worker processes for ingest (0: one per CPU core)."),
    Setting("max_archive_bytes", 2 * 1024**3, int, "Uncompressed bytes read from one archive, nested ones included."),
    Setting("max_member_bytes", 256 * 1024**2, int, "Uncompressed bytes of one archive member."),
    Setting("max_members", 20_000, int, "Members read from one archive, nested ones included."),
    Setting("max_ratio", 250.0, float, "Largest compression ratio accepted (zip-bomb guard)."),
    Setting("max_depth", 4, int, "Deepest nesting of archives inside archives (the outer one is 1)."),
    Setting("max_image_pixels", 64_000_000, int, "Largest image (width x height x frames) decoded."),
    Setting("max_frames", 256, int, "Most frames read from one animation."),
    Setting("max_tiles", 2048, int, "Most tile items cut from one sheet."),
    Setting("model", "pixel", str, "Embedder used to index and search (pixel, effnet, vgg16, clip)."),
    Setting("index_backend", "local", str, "Vector index: local (faiss files in the data dir) or milvus."),
    Setting("milvus_uri", "", str, "Milvus server URI or Milvus Lite file (default: <data-dir>/milvus.db)."),
    Setting("milvus_token", "", str, "Token for a Milvus server that needs one."),
    Setting("embed_batch", 256, int, "Items embedded per batch (and per catalog commit)."),
    Setting("host", "127.0.0.1", str, "Address `serve` listens on (0.0.0.0 for every interface)."),
    Setting("port", 8000, int, "Port `serve` listens on."),
    Setting("search_threads", 0, int, "Searches `serve` runs at once; more wait their turn (0: one per CPU core)."),
    Setting("max_upload_bytes", 10 * 1024**2, int, "Largest image upload accepted by the web app."),
    Setting(
        "upload_store_bytes",
        1024**3,
        int,
        "Disk kept for uploaded query images (their shareable URLs); the least recently used go first.",
    ),
    Setting("max_query_pixels", 16_000_000, int, "Largest query image (width x height) searched for."),
    Setting("fetch_max_bytes", 10 * 1024**2, int, "Largest image fetched from a URL given as a query."),
    Setting("fetch_timeout", 10.0, float, "Seconds allowed for fetching an image URL, redirects included."),
    Setting(
        "fetch_allow_hosts",
        "",
        str,
        "Comma-separated hosts (host or host:port) whose URLs skip the public-address check, e.g. a local mirror.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    data_dir: Path
    base_url: str
    contact: str
    min_interval: float
    delay: float | None
    concurrency: int
    timeout: float
    retries: int
    backoff: float
    backoff_max: float
    max_file_bytes: int
    max_page_bytes: int
    robots_ttl: float
    items_per_page: int
    art_types: str
    workers: int
    max_archive_bytes: int
    max_member_bytes: int
    max_members: int
    max_ratio: float
    max_depth: int
    max_image_pixels: int
    max_frames: int
    max_tiles: int
    model: str
    index_backend: str
    milvus_uri: str
    milvus_token: str
    embed_batch: int
    host: str
    port: int
    search_threads: int
    max_upload_bytes: int
    upload_store_bytes: int
    max_query_pixels: int
    fetch_max_bytes: int
    fetch_timeout: float
    fetch_allow_hosts: str

    @property
    def art_type_list(self) -> list[str]:
        return [t.strip() for t in self.art_types.split(",") if t.strip()]

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def fetch_allow_list(self) -> frozenset[str]:
        return frozenset(h.strip() for h in self.fetch_allow_hosts.split(",") if h.strip())


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        if setting.type is bool and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return setting.type(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {setting.name} must be {setting.type.__name__}, got {value!r}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - set(_BY_NAME)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Resolve every setting from flags > environment > TOML file > default."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}

    data_dir = flags.get("data_dir") or env.get("OGASEARCH_DATA_DIR") or values["data_dir"]
    path = config_file or (Path(env["OGASEARCH_CONFIG"]) if env.get("OGASEARCH_CONFIG") else None)
    if path is None and (Path(data_dir) / "ogasearch.toml").is_file():
        path = Path(data_dir) / "ogasearch.toml"
    if path is not None:
        for name, value in _read_toml(path).items():
            values[name] = _coerce(_BY_NAME[name], value, str(path))
    for setting in SETTINGS:
        key = f"OGASEARCH_{setting.name.upper()}"
        if env.get(key):
            values[setting.name] = _coerce(setting, env[key], key)
    for name, value in flags.items():
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {name}")
        values[name] = _coerce(_BY_NAME[name], value, f"--{name.replace('_', '-')}")

    values["data_dir"] = Path(values["data_dir"])
    values["base_url"] = str(values["base_url"]).rstrip("/")
    _validate(values)
    return Config(**{f.name: values[f.name] for f in fields(Config)})


def _validate(values: dict[str, Any]) -> None:
    if not values["base_url"].startswith(("http://", "https://")):
        raise ConfigError(f"base_url must start with http:// or https://, got {values['base_url']!r}")
    for name in (
        "concurrency",
        "items_per_page",
        "max_file_bytes",
        "max_page_bytes",
        "max_archive_bytes",
        "max_member_bytes",
        "max_members",
        "max_depth",
        "max_image_pixels",
        "max_frames",
        "max_tiles",
        "embed_batch",
        "max_upload_bytes",
        "upload_store_bytes",
        "max_query_pixels",
        "fetch_max_bytes",
    ):
        if values[name] < 1:
            raise ConfigError(f"{name} must be at least 1, got {values[name]}")
    for name in (
        "min_interval",
        "timeout",
        "backoff",
        "backoff_max",
        "retries",
        "workers",
        "max_ratio",
        "fetch_timeout",
        "search_threads",
    ):
        if values[name] < 0:
            raise ConfigError(f"{name} must not be negative, got {values[name]}")
    if values["delay"] is not None and values["delay"] < 0:
        raise ConfigError(f"delay must not be negative, got {values['delay']}")
    if not 0 <= values["port"] <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {values['port']}")
    values["robots_ttl"] = min(values["robots_ttl"], 86400.0)
    if values["index_backend"] not in ("local", "milvus"):
        raise ConfigError(f"index_backend must be local or milvus, got {values['index_backend']!r}")

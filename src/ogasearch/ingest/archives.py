"""Read the files inside archives safely: zip, rar, 7z, tar (plain or compressed), single gz/bz2/xz files.

OGA ships most art inside archives, often nested, sometimes damaged, now and then hostile. This module turns
one archive into a stream of members (path inside the archive, bytes) and does nothing else:

- Nothing is ever written to a path derived from a member name. Member data is held in memory, one member at
  a time. (Only the unar fallback for RAR writes to disk: the archive itself, into a private temporary
  directory, because unar reads files.)
- Every byte that comes out of a decompressor is counted against ArchiveLimits while it is read; declared
  sizes only serve to fail early and are never trusted.
- A fault raises ArchiveError after the members read before it have been yielded, so the caller keeps them.
  A fault inside a nested archive is recorded and the outer archive goes on (see iter_members).

Backends: zip: zipfile, or libarchive's streaming reader when the central directory is missing (truncated
downloads). 7z: libarchive, then py7zr for what libarchive cannot decode (zstd, brotli, ...). rar: libarchive
(RAR5, non-solid RAR4), then unar with rarfile's header parser (solid and old RAR4). tar: tarfile in stream
mode. gz/bz2/xz: gzip/bz2/lzma; a tar inside is read as a tar, anything else is one member.
"""

from __future__ import annotations

import bz2
import ctypes
import gzip
import io
import logging
import lzma
import os
import queue
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import libarchive
import libarchive.exception
import py7zr
import py7zr.exceptions
import py7zr.io

log = logging.getLogger(__name__)

_HEAD = 512  # enough to recognise every supported format (a tar header block is the longest)
_CHUNK = 256 * 1024
_TAR_META_MAX = 1024 * 1024  # long-name and pax headers: tarfile reads them whole into memory
_TAR_META_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
_JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
_COMPRESSED_SUFFIXES = {  # suffix -> what replaces it in the name of the decompressed file
    ".tgz": ".tar",
    ".tbz": ".tar",
    ".tbz2": ".tar",
    ".txz": ".tar",
    ".svgz": ".svg",
    ".gz": "",
    ".bz2": "",
    ".xz": "",
}


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on the work one top-level archive may cause, each checked while reading."""

    max_total_bytes: int = 2 * 1024**3  # uncompressed bytes read per top-level archive, nested included
    max_member_bytes: int = 256 * 1024**2
    max_members: int = 20_000  # entries per top-level archive, nested included (directories count too)
    max_ratio: float = 250.0  # uncompressed/compressed, per member where known and per archive overall
    max_depth: int = 4  # nesting depth (top-level archive = depth 1)
    ratio_grace_bytes: int = 16 * 1024**2  # ratios apply beyond this: flat-colour BMPs compress 1000:1


@dataclass(frozen=True)
class Member:
    path: str  # path inside the top-level archive, nested archives joined with '/': "a/inner.7z/b/c.png"
    data: bytes


class ArchiveError(Exception):
    """Why an archive could not be read (fully); str() is a clear message for users."""


class _Fatal(ArchiveError):
    """A limit of the whole top-level archive was hit: it ends the top-level archive, not just a nested one."""


class _Unreadable(ArchiveError):
    """The backend could not read the archive: another backend may still be able to."""


_DEFAULT_LIMITS = ArchiveLimits()
# libarchive-c does not expose it; libarchive reads stored RAR data of an encrypted entry as if it were plain.
_entry_is_encrypted = libarchive.ffi.libarchive.archive_entry_is_encrypted
_entry_is_encrypted.argtypes, _entry_is_encrypted.restype = [ctypes.c_void_p], ctypes.c_int
_Source = Path | bytes


def _everything(path: str) -> bool:
    return True


# ---------------------------------------------------------------------------------------------- formats


def archive_kind(name: str, head: bytes) -> str | None:
    """The archive format of a file from its first 512+ bytes: 'zip', 'rar', '7z', 'tar', 'gz', 'bz2', 'xz'.

    Magic bytes decide; the name only admits pre-POSIX tars, which have no magic. A compressed tar (.tar.gz,
    .tgz, .tar.bz2, .tar.xz) is 'gz', 'bz2' or 'xz' here, its outer layer: iter_members reads the tar inside
    as a tar. None when the bytes are not a supported archive.
    """
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")):
        return "rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gz"
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if _is_tar(name, head):
        return "tar"
    return None


def _is_tar(name: str, head: bytes) -> bool:
    """A tar header block with a valid checksum, and either the ustar magic or a .tar name."""
    if len(head) < 512 or not (head[257:262] == b"ustar" or name.lower().endswith(".tar")):
        return False
    try:
        stored = int(head[148:156].strip(b"\0 ") or b"-", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:512])


# ------------------------------------------------------------------------------------------------ names


def _normalize(raw: str) -> str:
    """A member name fit for display and provenance: '/'-separated, relative, without '.' or '..'."""
    parts = raw.replace("\\", "/").split("/")
    if parts[0][1:2] == ":" and parts[0][:1].isalpha():  # drive letter, "C:" or "C:name"
        parts[0] = parts[0][2:]
    return "/".join(part for part in parts if part not in ("", ".", ".."))


def _is_junk(name: str) -> bool:
    """Files that operating systems leave in archives, never art."""
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1].lower() in _JUNK_FILES


def _decompressed_name(name: str) -> str:
    """The name of what a gz/bz2/xz file holds: 'hero.png.gz' -> 'hero.png', 'pack.tgz' -> 'pack.tar'."""
    base = name.rsplit("/", 1)[-1]
    for suffix, replacement in _COMPRESSED_SUFFIXES.items():
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The name as its writer meant it.

    Without the UTF-8 flag zipfile decodes CP437, but many tools wrote UTF-8 without setting the flag, and
    some store the UTF-8 name in an Info-ZIP Unicode Path field.
    """
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    extra = info.extra
    offset = 0
    while offset + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, offset)
        body = extra[offset + 4 : offset + 4 + size]
        if tag == 0x7075 and len(body) > 5 and body[0] == 1 and body[1:5] == struct.pack("<I", zlib.crc32(raw)):
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                break
        offset += 4 + size
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _tar_name(name: str) -> str:
    """tarfile keeps non-UTF-8 bytes of old tars as surrogates; read such a name as Latin-1 instead."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("latin-1")
    return name


def _entry_name(entry: libarchive.ArchiveEntry) -> str:
    try:
        return entry.pathname or ""
    except UnicodeDecodeError:
        entry.header_codec = "latin-1"
        return entry.pathname or ""


# ----------------------------------------------------------------------------------------------- limits


@dataclass
class _Level:
    """One archive being read: where it sits, for member paths and messages, and its size for the ratio."""

    where: str  # for messages: the top-level name, or the nested archive's member path
    prefix: str  # prepended to member paths: "" at the top, the nested archive's member path below
    name: str  # its file name, for the name of a decompressed gz/bz2/xz file
    size: int
    start: int  # bytes read from the top-level archive when this one was opened

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


@dataclass
class _Ctx:
    """What one iter_members call shares across nesting: limits, filter, running totals, nested faults."""

    limits: ArchiveLimits
    want: Callable[[str], bool]
    errors: list[str] | None
    top: _Level
    total: int = 0
    members: int = 0

    def spend(self, size: int, level: _Level) -> None:
        """Count uncompressed bytes against the total and the ratio of the archive and the top-level one."""
        self.total += size
        limits = self.limits
        if self.total > limits.max_total_bytes:
            raise _Fatal(
                f"{self.top.where}: more than {limits.max_total_bytes} bytes uncompressed (limit); stopped reading"
            )
        for archive, error in ((self.top, _Fatal), (level, ArchiveError)):
            out = self.total - archive.start
            if out > limits.ratio_grace_bytes and out > limits.max_ratio * archive.size:
                raise error(
                    f"{archive.where}: expands more than {limits.max_ratio:g} times its size "
                    "(a zip bomb?); stopped reading"
                )

    def count(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _Fatal(f"{self.top.where}: more than {self.limits.max_members} entries (limit); stopped reading")

    def expect(self, entries: int, level: _Level) -> None:
        """Fail before reading when a directory declares more entries than the limit leaves."""
        if self.members + entries > self.limits.max_members:
            raise _Fatal(
                f"{level.where}: {entries} entries; more than the limit of {self.limits.max_members} per archive"
            )

    def note(self, message: str) -> None:
        if self.errors is None:
            log.warning("%s", message)
        else:
            self.errors.append(message)


class _Take:
    """One member's data, read through the limits.

    It is kept when wanted or when it may be an archive; otherwise it is dropped after the first block, so
    unwanted files (sound, video) cost neither memory nor the per-member cap.
    """

    def __init__(
        self, ctx: _Ctx, level: _Level, name: str, packed: int | None = None, declared: int | None = None
    ) -> None:
        self.ctx, self.level, self.name, self.packed = ctx, level, name, packed
        self.path = level.path(name)
        self.wanted = ctx.want(self.path)
        self.size = 0
        self.data: bytearray | None = bytearray()
        if self.wanted and declared is not None and declared > ctx.limits.max_member_bytes:
            raise self.too_big()

    def too_big(self) -> ArchiveError:
        limit = self.ctx.limits.max_member_bytes
        return ArchiveError(f"{self.level.where}: {self.name!r} is larger than {limit} bytes (limit)")

    def feed(self, chunk: bytes) -> bool:
        """Count a chunk; False once the data is dropped (where skipping is cheap, stop reading)."""
        limits = self.ctx.limits
        self.ctx.spend(len(chunk), self.level)
        self.size += len(chunk)
        if self.packed is not None and self.size > max(limits.ratio_grace_bytes, limits.max_ratio * self.packed):
            raise ArchiveError(
                f"{self.level.where}: {self.name!r} expands more than {limits.max_ratio:g} times "
                "(a zip bomb?); stopped reading"
            )
        if self.data is None:
            return False
        sniffing = len(self.data) < _HEAD
        self.data += chunk
        if len(self.data) > limits.max_member_bytes:
            raise self.too_big()
        if sniffing and len(self.data) >= _HEAD and not self.keep():
            self.data = None
        return self.data is not None

    def keep(self) -> bool:
        return self.wanted or archive_kind(self.name, bytes(self.data[:_HEAD])) is not None

    def result(self) -> bytes | None:
        return bytes(self.data) if self.data is not None and self.keep() else None


def _take(
    ctx: _Ctx,
    level: _Level,
    name: str,
    chunks: Iterable[bytes],
    packed: int | None = None,
    declared: int | None = None,
    drain: bool = True,
) -> bytes | None:
    """Read a member with _Take. Dropped data is still read to the end (drain) where the format streams,
    so that skipping a member costs counted bytes rather than uncounted decompression."""
    take = _Take(ctx, level, name, packed, declared)
    for chunk in chunks:
        if not take.feed(chunk) and not drain:
            break
    return take.result()


# ---------------------------------------------------------------------------------------------- readers

_Reader = Callable[[_Source, _Level, _Ctx], Iterator[tuple[str, bytes]]]
_Fallible = Callable[[_Source, _Level, _Ctx, Counter[str]], Iterator[tuple[str, bytes]]]
_Fallback = Callable[[_Source, _Level, _Ctx, Counter[str], ArchiveError], Iterator[tuple[str, bytes]]]


@contextmanager
def _open(src: _Source) -> Iterator[BinaryIO]:
    if isinstance(src, Path):
        with src.open("rb") as f:
            yield f
    else:
        yield io.BytesIO(src)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    return iter(partial(f.read, _CHUNK), b"")


def _encrypted(level: _Level, name: str | None = None) -> ArchiveError:
    what = f"{name!r} is encrypted" if name else "encrypted"
    return ArchiveError(f"{level.where}: {what}; no password is known")


@contextmanager
def _backend_errors(level: _Level) -> Iterator[None]:
    """Turn what the decompressors raise on bad data into ArchiveError."""
    try:
        yield
    except ArchiveError:
        raise
    except libarchive.exception.ArchiveError as exc:
        message = getattr(exc, "msg", None) or "unrecognised data"
        if any(word in message.lower() for word in ("encrypt", "passphrase", "password")):
            raise _encrypted(level) from exc
        raise _Unreadable(f"{level.where}: cannot read ({message})") from exc
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        py7zr.exceptions.ArchiveError,
        OSError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,
    ) as exc:
        raise _Unreadable(f"{level.where}: damaged, truncated or unsupported ({exc})") from exc


def _zip_entry_count(f: BinaryIO) -> int | None:
    """Entries the end-of-central-directory record declares: known before zipfile parses them all."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 22 - 65_535))
    tail = f.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return None
    count = int.from_bytes(tail[end + 10 : end + 12], "little")
    if count == 0xFFFF and end >= 20 and tail[end - 20 : end - 16] == b"PK\x06\x07":  # zip64
        f.seek(int.from_bytes(tail[end - 12 : end - 4], "little"))
        record = f.read(40)
        if record[:4] == b"PK\x06\x06" and len(record) == 40:
            count = int.from_bytes(record[32:40], "little")
    return count


def _zip(src: _Source, level: _Level, ctx: _Ctx) -> Iterator[tuple[str, bytes]]:
    with _open(src) as f, _backend_errors(level):
        count = _zip_entry_count(f)
        if count is not None:
            ctx.expect(count, level)
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError):
            archive = None
        if archive is None:  # no readable central directory: read the local headers in order
            yield from _libarchive("zip", src, level, ctx, Counter())
            return
        with archive:
            for info in archive.infolist():
                ctx.count()
                name = _normalize(_zip_name(info))
                if (
                    not name
                    or info.filename.endswith(("/", "\\"))
                    or stat.S_ISLNK(info.external_attr >> 16)
                    or _is_junk(name)
                ):
                    continue
                if info.flag_bits & 0x41:
                    raise _encrypted(level, name)
                with archive.open(info) as member:
                    data = _take(ctx, level, name, _chunks(member), info.compress_size, info.file_size, drain=False)
                if data is not None:
                    yield level.path(name), data


def _libarchive(fmt: str, src: _Source, level: _Level, ctx: _Ctx, done: Counter[str]) -> Iterator[tuple[str, bytes]]:
    """Any format libarchive reads, streaming; `done` counts the regular files fully read, by name."""
    if isinstance(src, Path):
        reader = libarchive.file_reader(str(src), fmt, block_size=_CHUNK)
    else:
        reader = libarchive.memory_reader(src, fmt)
    with _backend_errors(level), reader as archive:
        for entry in archive:
            ctx.count()
            name = _normalize(_entry_name(entry))
            if not name or not entry.isreg or entry.islnk or _is_junk(name):
                continue
            if _entry_is_encrypted(entry._entry_p):
                raise _encrypted(level, name)
            data = _take(ctx, level, name, entry.get_blocks(_CHUNK), declared=entry.size)
            done[name] += 1
            if data is not None:
                yield level.path(name), data


def _with_fallback(
    first: _Fallible, second: _Fallback, src: _Source, level: _Level, ctx: _Ctx
) -> Iterator[tuple[str, bytes]]:
    """Read with `first`; where it cannot, go on with `second`, which skips the files `first` delivered."""
    done: Counter[str] = Counter()
    members = ctx.members
    try:
        yield from first(src, level, ctx, done)
    except _Unreadable as exc:
        ctx.members = members
        yield from second(src, level, ctx, done, exc)


def _tar(src: _Source, level: _Level, ctx: _Ctx) -> Iterator[tuple[str, bytes]]:
    with _open(src) as f, _backend_errors(level):
        yield from _tar_stream(f, level, ctx)


class _TarInfo(tarfile.TarInfo):
    """tarfile reads long-name and pax headers whole into memory: refuse big ones before it does."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _TAR_META_TYPES and self.size > _TAR_META_MAX:
            raise tarfile.HeaderError(f"{self.size}-byte extended header")
        return super()._proc_member(tar)


def _tar_stream(f: BinaryIO, level: _Level, ctx: _Ctx) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=f, mode="r|", tarinfo=_TarInfo, encoding="utf-8") as archive:
        for info in archive:
            ctx.count()
            name = _normalize(_tar_name(info.name))
            if not name or not info.isreg() or _is_junk(name):
                continue
            member = archive.extractfile(info)
            data = _take(ctx, level, name, _chunks(member)) if member else None
            if data is not None:
                yield level.path(name), data


def _compressed(
    opener: Callable[[BinaryIO], BinaryIO], src: _Source, level: _Level, ctx: _Ctx
) -> Iterator[tuple[str, bytes]]:
    """A gz/bz2/xz file: a tar inside is read as a tar, anything else is one member named after the file."""
    name = _decompressed_name(level.name)
    with _backend_errors(level):
        with _open(src) as raw, opener(raw) as stream:
            head = stream.read(_HEAD)
        with _open(src) as raw, opener(raw) as stream:
            if _is_tar(name, head):
                yield from _tar_stream(stream, level, ctx)
                return
            ctx.count()
            data = _take(ctx, level, name, _chunks(stream))
    if data is not None:
        yield level.path(name), data


def _sevenzip_py7zr(
    src: _Source, level: _Level, ctx: _Ctx, skip: Counter[str], why: ArchiveError
) -> Iterator[tuple[str, bytes]]:
    """7z that libarchive cannot decode (zstd, brotli, ...).

    py7zr only extracts through writer callbacks, so extraction runs in a worker thread that hands over one
    member at a time and waits until the consumer asks for the next: the two never run at once.
    """
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    class Stopped(Exception):
        pass

    def hand_over(tag: str, value: object) -> None:
        handoff.put((tag, value))
        handoff.join()

    class Sink(py7zr.io.Py7zIO):
        def __init__(self, take: _Take | None) -> None:
            self.take = take

        def write(self, s: bytes | bytearray) -> int:
            if stop.is_set():
                raise Stopped
            if self.take is not None:
                self.take.feed(bytes(s))
            return len(s)

        def close(self) -> None:
            data = self.take.result() if self.take is not None else None
            if data is not None:
                hand_over("member", (self.take.path, data))

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self.take.size if self.take is not None else 0

    class Factory(py7zr.io.WriterFactory):
        def __init__(self, links: set[str]) -> None:
            self.links = links

        def create(self, filename: str) -> py7zr.io.Py7zIO:
            name = _normalize(filename)
            if not name or name in self.links or _is_junk(name):
                return Sink(None)
            if skip[name]:
                skip[name] -= 1
                return Sink(None)
            return Sink(_Take(ctx, level, name))

    def work() -> None:
        try:
            with _open(src) as f, py7zr.SevenZipFile(f) as archive:
                if archive.needs_password():
                    raise _encrypted(level)
                files = list(archive.files)
                ctx.expect(len(files), level)
                for _ in files:
                    ctx.count()
                links = {_normalize(file.filename) for file in files if file.is_symlink or file.is_junction}
                archive.extractall(factory=Factory(links))
            hand_over("end", None)
        except py7zr.exceptions.PasswordRequired:
            hand_over("error", _encrypted(level))
        except Exception as exc:
            hand_over("error", exc)

    worker = threading.Thread(target=work, name="py7zr", daemon=True)
    worker.start()
    try:
        while True:
            tag, value = handoff.get()
            try:
                if tag == "end":
                    return
                if isinstance(value, ArchiveError):
                    raise value
                if tag == "error":
                    raise ArchiveError(f"{why}; py7zr cannot read it either ({value})") from value
                yield value
            finally:
                handoff.task_done()
    finally:
        stop.set()
        while worker.is_alive():
            try:
                handoff.get(timeout=0.05)
                handoff.task_done()
            except queue.Empty:
                pass


def _rar_unar(
    src: _Source, level: _Level, ctx: _Ctx, skip: Counter[str], why: ArchiveError
) -> Iterator[tuple[str, bytes]]:
    """RAR that libarchive cannot read (solid and old RAR4): rarfile parses the headers, unar decompresses.

    One `unar -o -` process writes the chosen files to stdout, one after the other; the headers' sizes
    split the stream and their CRC32s check each file, because unar reports no damage when writing to stdout.
    """
    unar = shutil.which("unar")
    try:
        import rarfile
    except ImportError:
        rarfile = None
    if unar is None or rarfile is None:
        raise ArchiveError(f"{why}; reading it needs unar (Debian package unar) and the rarfile package")
    with tempfile.TemporaryDirectory(prefix="ogasearch-rar-") as tmp:
        # Alone in a private directory, since unar takes sibling files for further volumes.
        archive = Path(tmp, "archive.rar")
        if isinstance(src, Path):
            shutil.copyfile(src, archive)
        else:
            archive.write_bytes(src)
        try:
            infos = rarfile.RarFile(archive).infolist()
        except rarfile.PasswordRequired as exc:
            raise _encrypted(level) from exc
        except (rarfile.NeedFirstVolume, rarfile.BadRarName) as exc:
            raise ArchiveError(f"{level.where}: one part of a multi-volume RAR; the others are not here") from exc
        except rarfile.Error as exc:
            raise ArchiveError(f"{why}; rarfile cannot read it either ({exc})") from exc
        ctx.expect(len(infos), level)
        plan: list[_UnarFile] = []
        fault = None
        for index, info in enumerate(infos):
            ctx.count()
            name = _normalize(info.filename)
            if not name or info.isdir() or info.is_symlink() or info.file_redir or _is_junk(name):
                continue
            if skip[name]:
                skip[name] -= 1
                continue
            if info.needs_password():
                fault = _encrypted(level, name)
                break
            plan.append(_UnarFile(index, name, info.file_size, info.compress_size, info.CRC))
        if plan:
            yield from _unar_stream(unar, archive, plan, level, ctx)
    if fault is not None:
        raise fault


@dataclass(frozen=True)
class _UnarFile:
    index: int  # unar's index: the order of the file headers
    name: str
    size: int
    packed: int
    crc: int | None  # CRC32 of the data; RAR5 may carry a BLAKE2 hash instead


def _unar_stream(
    unar: str, archive: Path, plan: list[_UnarFile], level: _Level, ctx: _Ctx
) -> Iterator[tuple[str, bytes]]:
    home = archive.parent
    command = [unar, "-q", "-no-recursion", "-o", "-", "-indexes", str(archive)]
    with (home / "stderr").open("w+b") as stderr:
        proc = subprocess.Popen(
            [*command, *(str(file.index) for file in plan)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=home,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"},
        )
        try:
            for file in plan:
                chunks = _unar_chunks(proc.stdout, file, level)
                data = _take(ctx, level, file.name, chunks, file.packed, file.size)
                if data is not None:
                    yield level.path(file.name), data
            extra = proc.stdout.read(1)
            status = proc.wait()
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if status or extra:
            stderr.seek(0)
            detail = stderr.read()[-300:].decode("utf-8", "replace").strip()
            raise ArchiveError(f"{level.where}: unar failed (status {status}) {detail}".rstrip())


def _unar_chunks(stream: BinaryIO, file: _UnarFile, level: _Level) -> Iterator[bytes]:
    """One file's bytes from unar's output, checked against its CRC32."""
    left, crc = file.size, 0
    while left:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            raise ArchiveError(f"{level.where}: {file.name!r} is truncated or could not be decompressed")
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
        yield chunk
    if file.crc is not None and crc != file.crc:
        raise ArchiveError(f"{level.where}: {file.name!r} fails its CRC check (damaged data)")


_READERS: dict[str, _Reader] = {
    "zip": _zip,
    "rar": partial(_with_fallback, partial(_libarchive, "all"), _rar_unar),
    "7z": partial(_with_fallback, partial(_libarchive, "7zip"), _sevenzip_py7zr),
    "tar": _tar,
    "gz": partial(_compressed, lambda raw: gzip.GzipFile(fileobj=raw)),
    "bz2": partial(_compressed, bz2.BZ2File),
    "xz": partial(_compressed, lzma.LZMAFile),
}


# -------------------------------------------------------------------------------------------------- API


def iter_members(
    source: Path | bytes,
    name: str,
    limits: ArchiveLimits = _DEFAULT_LIMITS,
    want: Callable[[str], bool] = _everything,
    errors: list[str] | None = None,
) -> Iterator[Member]:
    """Yield the regular files of an archive whose path satisfies `want`, in archive order, one at a time.

    `name` is the archive's file name: messages use it, and it names the file inside a plain .gz/.bz2/.xz.
    Nested archives are always opened, whatever `want` says, up to limits.max_depth, and their members
    yielded in their place ("a/inner.7z/b/c.png"); a nested archive itself is not yielded. Directories,
    links, devices and OS junk (__MACOSX/, ._*, .DS_Store, Thumbs.db, desktop.ini) are skipped.

    A fault (limit exceeded, encryption, damaged or truncated data, unsupported format) raises ArchiveError
    after the members read before it were yielded. A fault inside a nested archive does not end the outer
    one: its message ("sub/inner.zip: ...") is appended to `errors`, or logged as a warning when `errors`
    is None, and reading goes on. Limits of the whole top-level archive (total bytes, member count, overall
    ratio) still end it when a nested archive exceeds them.
    """
    if isinstance(source, Path):
        with source.open("rb") as f:
            head = f.read(_HEAD)
        size = source.stat().st_size
    else:
        head, size = source[:_HEAD], len(source)
    kind = archive_kind(name, head)
    if kind is None:
        raise ArchiveError(f"{name}: not a zip, rar, 7z, tar, gz, bz2 or xz archive")
    top = _Level(where=name, prefix="", name=name, size=size, start=0)
    yield from _walk(source, top, kind, 1, _Ctx(limits, want, errors, top))


def _walk(src: _Source, level: _Level, kind: str, depth: int, ctx: _Ctx) -> Iterator[Member]:
    for path, data in _READERS[kind](src, level, ctx):
        inner = archive_kind(path, data[:_HEAD])
        if inner is None:
            yield Member(path, data)
        elif depth >= ctx.limits.max_depth:
            ctx.note(f"{path}: archive nested more than {ctx.limits.max_depth} deep; not opened")
        else:
            nested = _Level(where=path, prefix=path, name=path, size=len(data), start=ctx.total)
            try:
                yield from _walk(data, nested, inner, depth + 1, ctx)
            except _Fatal:
                raise
            except ArchiveError as exc:
                ctx.note(str(exc))

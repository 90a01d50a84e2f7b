"""Safe archive reading: formats, names, nesting, limits and faults, on archives built here."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import logging
import lzma
import os
import shutil
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import py7zr
import pytest

from ogasearch.ingest.archives import ArchiveError, ArchiveLimits, Member, archive_kind, iter_members

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def png(tag: str) -> bytes:
    """Distinct small payloads, so that a mixed-up member shows."""
    return PNG + tag.encode()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buf.getvalue()


def make_tar(entries: list[tuple[str | tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:
        for name, data in entries:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            if info.isreg():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buf.getvalue()


def make_7z(entries: list[tuple[str, bytes]], **options: object) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", **options) as archive:
        for name, data in entries:
            archive.writestr(data, name)
    return buf.getvalue()


DOS_TIME = (2020 - 1980) << 25 | 1 << 21 | 1 << 16  # 2020-01-01 00:00


def make_rar4(files: list[tuple[str, bytes]], solid: bool = False, encrypted: tuple[str, ...] = ()) -> bytes:
    """A RAR 4 archive of stored (uncompressed) files, assembled block by block."""

    def block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
        header = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + data

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0x0008 if solid else 0, bytes(6))
    for index, (name, data) in enumerate(files):
        raw = name.encode()
        flags = 0x8000 | (0x10 if solid and index else 0) | (0x04 if name in encrypted else 0)
        body = struct.pack(
            "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), DOS_TIME, 20, 0x30, len(raw), 0o100644
        )
        out += block(0x74, flags, body + raw, data)
    return out + block(0x7B, 0x4000, b"")


def make_rar5(files: list[tuple[str, bytes]]) -> bytes:
    """A RAR 5 archive of stored files, assembled block by block."""

    def vint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def block(fields: list[int | bytes], data: bytes = b"") -> bytes:
        header = b"".join(vint(f) if isinstance(f, int) else f for f in fields)
        header = vint(len(header)) + header
        return struct.pack("<I", zlib.crc32(header)) + header + data

    out = b"Rar!\x1a\x07\x01\x00" + block([1, 0, 0])
    for name, data in files:
        raw = name.encode()
        crc = struct.pack("<I", zlib.crc32(data))
        out += block([2, 0x02, len(data), 0x04, len(data), 0o100644, crc, 0, 1, len(raw), raw], data)
    return out + block([5, 0, 0])


def read(source: Path | bytes, name: str, **options: object) -> tuple[list[Member], str | None, list[str]]:
    """Members yielded, the final fault's message (None if none) and the nested faults."""
    members: list[Member] = []
    errors: list[str] = []
    try:
        for member in iter_members(source, name, errors=errors, **options):
            members.append(member)
    except ArchiveError as exc:
        return members, str(exc), errors
    return members, None, errors


def paths(members: list[Member]) -> list[str]:
    return [m.path for m in members]


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


needs_unar = pytest.mark.skipif(
    shutil.which("unar") is None or importlib.util.find_spec("rarfile") is None,
    reason="the RAR fallback needs unar (Debian package unar) and rarfile (PyPI)",
)


# ---------------------------------------------------------------------------------------- recognition


def test_archive_kind_by_magic_bytes_not_name() -> None:
    tar = make_tar([("a.png", PNG)])
    assert archive_kind("x.png", make_zip([("a.png", PNG)])) == "zip"
    assert archive_kind("x", make_zip([])) == "zip"
    assert archive_kind("x.zip", PNG) is None
    assert archive_kind("x.dat", make_7z([("a.png", PNG)])) == "7z"
    assert archive_kind("x.dat", make_rar4([("a.png", PNG)])) == "rar"
    assert archive_kind("x.dat", make_rar5([("a.png", PNG)])) == "rar"
    assert archive_kind("x.dat", tar) == "tar"
    assert archive_kind("x.tar.gz", gzip.compress(tar)) == "gz"
    assert archive_kind("x.tar.bz2", bz2.compress(tar)) == "bz2"
    assert archive_kind("x.tar.xz", lzma.compress(tar)) == "xz"
    assert archive_kind("x.txt", b"plain text " * 100) is None
    assert archive_kind("x.tar", b"") is None


def test_pre_posix_tar_needs_the_name_hint() -> None:
    header = bytearray(make_tar([("a.png", PNG)], fmt=tarfile.GNU_FORMAT)[:512])
    header[257:265] = bytes(8)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    assert archive_kind("old.tar", bytes(header)) == "tar"
    assert archive_kind("old.bin", bytes(header)) is None


def test_not_an_archive() -> None:
    members, error, _ = read(PNG, "hero.zip")
    assert members == []
    assert error == "hero.zip: not a zip, rar, 7z, tar, gz, bz2 or xz archive"


# ---------------------------------------------------------------------------------------------- names


def test_zip_names_utf8_cp437_and_unflagged_utf8() -> None:
    unicode_field = "ñandú.png".encode()
    info = zipfile.ZipInfo("ZZZZZ.png")
    info.extra = struct.pack("<HHB", 0x7075, 5 + len(unicode_field), 1)
    info.extra += struct.pack("<I", zlib.crc32(b"ZZZZZ.png")) + unicode_field
    data = make_zip(
        [
            ("日本/スプライト.png", png("utf8")),  # zipfile sets the UTF-8 flag
            ("cafX.png", png("cp437")),
            ("XXber.png", png("unflagged")),
            (info, png("field")),
        ]
    )
    data = data.replace(b"cafX.png", "café.png".encode("cp437")).replace(b"XXber.png", "über.png".encode())
    members, error, _ = read(data, "names.zip")
    assert error is None
    assert paths(members) == ["日本/スプライト.png", "café.png", "über.png", "ñandú.png"]
    assert [m.data for m in members] == [png("utf8"), png("cp437"), png("unflagged"), png("field")]


HOSTILE_NAMES = {
    "../../etc/passwd": "etc/passwd",
    "/abs/x.png": "abs/x.png",
    "C:\\win\\y.png": "win/y.png",
    "a/./b/../c.png": "a/b/c.png",
    "..\\..\\evil.png": "evil.png",
}


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_hostile_names_are_normalised_and_nothing_is_written(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [(name, png(name)) for name in HOSTILE_NAMES]
    archive = tmp_path / "data" / f"evil.{fmt}"
    archive.parent.mkdir()
    archive.write_bytes(make_zip(entries) if fmt == "zip" else make_tar(entries))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    before = snapshot(tmp_path)
    members, error, _ = read(archive, archive.name)
    assert error is None
    assert paths(members) == list(HOSTILE_NAMES.values())
    assert [m.data for m in members] == [png(name) for name in HOSTILE_NAMES]
    assert snapshot(tmp_path) == before


def test_links_devices_and_directories_are_skipped() -> None:
    link = zipfile.ZipInfo("link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zipped = make_zip([("dir/", b""), (link, b"../../etc/passwd"), ("real.png", png("z"))])
    assert paths(read(zipped, "links.zip")[0]) == ["real.png"]

    def info(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
        item = tarfile.TarInfo(name)
        item.type, item.linkname = kind, target
        return item

    tarred = make_tar(
        [
            ("real.png", png("t")),
            (info("sym.png", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (info("hard.png", tarfile.LNKTYPE, "real.png"), b""),
            (info("fifo", tarfile.FIFOTYPE), b""),
            (info("tty", tarfile.CHRTYPE), b""),
            (info("dir", tarfile.DIRTYPE), b""),
        ]
    )
    members, error, _ = read(tarred, "links.tar")
    assert error is None
    assert [(m.path, m.data) for m in members] == [("real.png", png("t"))]


def test_os_junk_is_skipped() -> None:
    junk = ["__MACOSX/._a.png", "__MACOSX/sub/b.png", "._c.png", "sub/.DS_Store", "Thumbs.db", "DESKTOP.INI"]
    data = make_zip([(name, png(name)) for name in [*junk, "sub/a.png"]])
    assert paths(read(data, "junk.zip")[0]) == ["sub/a.png"]


# -------------------------------------------------------------------------------------- formats, nesting


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("pack.tgz", gzip.compress),
        ("pack.tar.gz", gzip.compress),
        ("pack.tar.bz2", bz2.compress),
        ("pack.tar.xz", lzma.compress),
    ],
)
def test_compressed_tars(name: str, compress: object) -> None:
    data = compress(make_tar([("a/one.png", png("1")), ("two.png", png("2"))]))
    members, error, _ = read(data, name)
    assert error is None
    assert [(m.path, m.data) for m in members] == [("a/one.png", png("1")), ("two.png", png("2"))]


@pytest.mark.parametrize(
    ("name", "compress"),
    [("hero.png.gz", gzip.compress), ("hero.png.bz2", bz2.compress), ("hero.png.xz", lzma.compress)],
)
def test_single_compressed_file_is_named_without_the_suffix(name: str, compress: object) -> None:
    members, error, _ = read(compress(png("hero")), name)
    assert error is None
    assert [(m.path, m.data) for m in members] == [("hero.png", png("hero"))]


@pytest.mark.parametrize("as_path", [True, False])
def test_zip_in_7z_in_tar_gz(as_path: bool, tmp_path: Path) -> None:
    pics = make_zip([("c.png", png("c")), ("d.png", png("d"))])
    inner = make_7z([("b/mid.png", png("mid")), ("b/pics.zip", pics)])
    data = gzip.compress(make_tar([("top.png", png("top")), ("a/inner.7z", inner), ("z.png", png("z"))]))
    source: Path | bytes = data
    if as_path:
        source = tmp_path / "pack.tar.gz"
        source.write_bytes(data)
    members, error, errors = read(source, "pack.tar.gz")
    assert (error, errors) == (None, [])
    assert [(m.path, m.data) for m in members] == [
        ("top.png", png("top")),
        ("a/inner.7z/b/mid.png", png("mid")),
        ("a/inner.7z/b/pics.zip/c.png", png("c")),
        ("a/inner.7z/b/pics.zip/d.png", png("d")),
        ("z.png", png("z")),
    ]


def test_want_filters_members_but_nested_archives_are_still_opened() -> None:
    inner = make_zip([("c.png", png("c")), ("notes.txt", b"hello" * 200)])
    data = make_zip([("a.png", png("a")), ("music.wav", os.urandom(5000)), ("sub.zip", inner)])
    members, error, _ = read(data, "w.zip", want=lambda path: path.endswith(".png"))
    assert error is None
    assert paths(members) == ["a.png", "sub.zip/c.png"]


def test_nesting_deeper_than_max_depth_is_noted_not_opened() -> None:
    data = make_zip([("deep.png", png("3"))])
    for level in (2, 1):
        data = make_zip([(f"l{level}.png", png(str(level))), (f"l{level + 1}.zip", data)])
    members, error, errors = read(data, "l1.zip", limits=ArchiveLimits(max_depth=2))
    assert error is None
    assert paths(members) == ["l1.png", "l2.zip/l2.png"]
    assert errors == ["l2.zip/l3.zip: archive nested more than 2 deep; not opened"]


def test_a_bad_nested_archive_does_not_end_the_outer_one() -> None:
    broken = make_zip([("x.png", png("x"))], zipfile.ZIP_STORED)
    broken = broken.replace(png("x"), png("y"))  # CRC no longer matches
    secret = make_7z([("s.png", png("s"))], password="pw")
    data = make_zip([("a.png", png("a")), ("broken.zip", broken), ("secret.7z", secret), ("b.png", png("b"))])
    members, error, errors = read(data, "outer.zip")
    assert error is None
    assert paths(members) == ["a.png", "b.png"]
    assert len(errors) == 2
    assert errors[0].startswith("broken.zip: ") and "CRC" in errors[0]
    assert errors[1] == "secret.7z: 's.png' is encrypted; no password is known"


def test_nested_faults_are_logged_without_a_collector(caplog: pytest.LogCaptureFixture) -> None:
    data = make_zip([("bad.zip", b"PK\x03\x04 not really"), ("a.png", png("a"))])
    with caplog.at_level(logging.WARNING):
        members = list(iter_members(data, "outer.zip"))
    assert paths(members) == ["a.png"]
    assert "bad.zip: " in caplog.text


def test_7z_codec_libarchive_lacks_is_read_by_py7zr() -> None:
    entries = [(f"s/{i}.png", png(str(i))) for i in range(5)]
    data = make_7z(entries, filters=[{"id": py7zr.FILTER_ZSTD}])
    members, error, _ = read(data, "zstd.7z")
    assert error is None
    assert [(m.path, m.data) for m in members] == entries
    stream = iter_members(data, "zstd.7z")  # stopping early must not leave the worker thread hanging
    assert next(stream).path == "s/0.png"
    stream.close()


# ---------------------------------------------------------------------------------------------- limits


def zeros_zip(megabytes: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("ok.png", png("ok"))
        with archive.open("bomb.bmp", "w") as member:
            for _ in range(megabytes):
                member.write(bytes(1 << 20))
    return buf.getvalue()


def test_zip_bomb_stops_at_the_ratio() -> None:
    data = zeros_zip(40)  # under the member cap, 1000 times its compressed size
    members, error, _ = read(data, "bomb.zip")
    assert paths(members) == ["ok.png"]
    assert error == "bomb.zip: expands more than 250 times its size (a zip bomb?); stopped reading"


def test_zip_bomb_over_the_member_cap_fails_before_reading() -> None:
    members, error, _ = read(zeros_zip(300), "bomb.zip")  # the declared size fails it: nothing inflated
    assert paths(members) == ["ok.png"]
    assert error == f"bomb.zip: 'bomb.bmp' is larger than {256 * 1024**2} bytes (limit)"


def test_member_larger_than_the_cap() -> None:
    data = make_zip([("ok.png", png("ok")), ("big.png", os.urandom(3 << 20))], zipfile.ZIP_STORED)
    members, error, _ = read(data, "big.zip", limits=ArchiveLimits(max_member_bytes=1 << 20))
    assert paths(members) == ["ok.png"]
    assert error == f"big.zip: 'big.png' is larger than {1 << 20} bytes (limit)"
    tarred = make_tar([("ok.png", png("ok")), ("big.png", os.urandom(3 << 20))])
    members, error, _ = read(tarred, "big.tar", limits=ArchiveLimits(max_member_bytes=1 << 20))
    assert paths(members) == ["ok.png"]
    assert error == f"big.tar: 'big.png' is larger than {1 << 20} bytes (limit)"


def test_nested_bombs_fail_one_by_one_then_the_total_cap_ends_all() -> None:
    inner = make_zip([("zeros.bmp", bytes(2 << 20))])
    data = make_zip([("a.png", png("a")), *((f"n{i}.zip", inner) for i in range(10)), ("b.png", png("b"))])
    members, error, errors = read(data, "nest.zip", limits=ArchiveLimits(max_member_bytes=1 << 20))
    assert error is None
    assert paths(members) == ["a.png", "b.png"]
    assert errors == [f"n{i}.zip: 'zeros.bmp' is larger than {1 << 20} bytes (limit)" for i in range(10)]

    limits = ArchiveLimits(max_total_bytes=5 << 20)
    members, error, errors = read(data, "nest.zip", limits=limits)
    assert paths(members) == ["a.png", "n0.zip/zeros.bmp", "n1.zip/zeros.bmp"]
    assert error == f"nest.zip: more than {5 << 20} bytes uncompressed (limit); stopped reading"


def test_too_many_members_fail_before_reading_any() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for i in range(100_000):
            archive.writestr(f"{i}.png", b"")
    started = time.monotonic()
    members, error, _ = read(buf.getvalue(), "many.zip", limits=ArchiveLimits(max_members=1000))
    assert time.monotonic() - started < 0.25  # zipfile alone takes longer to parse 100k entries
    assert members == []
    assert error == "many.zip: 100000 entries; more than the limit of 1000 per archive"


def test_too_many_members_in_a_stream_format() -> None:
    data = gzip.compress(make_tar([(f"{i}.png", b"x") for i in range(3000)]))
    members, error, _ = read(data, "many.tgz", limits=ArchiveLimits(max_members=1000))
    assert len(members) == 1000
    assert error == "many.tgz: more than 1000 entries (limit); stopped reading"


def test_oversized_tar_extended_header_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("a.png")
        info.size = len(PNG)
        archive.addfile(info, io.BytesIO(PNG))
        info = tarfile.TarInfo("b.png")
        info.size, info.pax_headers = len(PNG), {"comment": "x" * (2 << 20)}
        archive.addfile(info, io.BytesIO(PNG))
    members, error, _ = read(gzip.compress(buf.getvalue()), "pax.tgz")
    assert paths(members) == ["a.png"]
    assert error.startswith("pax.tgz: ") and "extended header" in error


# ---------------------------------------------------------------------------------------------- faults


def set_zip_flag(data: bytes, member: int, flag: int) -> bytes:
    """Set a general-purpose flag bit of one member in its local and central headers."""
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[member]
    out[info.header_offset + 6] |= flag
    central = -1
    for _ in range(member + 1):
        central = out.index(b"PK\x01\x02", central + 1)
    out[central + 8] |= flag
    return bytes(out)


def test_encrypted_zip_member() -> None:
    data = make_zip([("a.png", png("a")), ("b.png", png("b"))], zipfile.ZIP_STORED)
    members, error, _ = read(set_zip_flag(data, 1, 0x01), "locked.zip")
    assert paths(members) == ["a.png"]
    assert error == "locked.zip: 'b.png' is encrypted; no password is known"


@pytest.mark.parametrize(("header_encryption", "what"), [(False, "'a.png' is encrypted"), (True, "encrypted")])
def test_encrypted_7z(header_encryption: bool, what: str) -> None:
    data = make_7z([("a.png", png("a"))], password="secret", header_encryption=header_encryption)
    members, error, _ = read(data, "locked.7z")
    assert members == []
    assert error == f"locked.7z: {what}; no password is known"


def test_truncated_zip_yields_what_came_before_the_cut() -> None:
    entries = [(f"{i}.png", png(str(i)) + os.urandom(10_000)) for i in range(10)]
    data = make_zip(entries, zipfile.ZIP_STORED)
    members, error, _ = read(data[: len(data) // 2], "cut.zip")
    assert 3 <= len(members) < 10
    assert [(m.path, m.data) for m in members] == entries[: len(members)]
    assert error.startswith("cut.zip: ")


def test_truncated_tar_gz_yields_what_came_before_the_cut() -> None:
    entries = [(f"{i}.png", os.urandom(10_000)) for i in range(10)]
    data = gzip.compress(make_tar(entries))
    members, error, _ = read(data[: len(data) // 2], "cut.tgz")
    assert 3 <= len(members) < 10
    assert [(m.path, m.data) for m in members] == entries[: len(members)]
    assert error.startswith("cut.tgz: ")


def test_crc_error_in_a_member() -> None:
    data = make_zip([("a.png", png("a")), ("b.png", png("b")), ("c.png", png("c"))], zipfile.ZIP_STORED)
    damaged = data.replace(png("b"), png("B"))
    members, error, _ = read(damaged, "crc.zip")
    assert [(m.path, m.data) for m in members] == [("a.png", png("a"))]
    assert error.startswith("crc.zip: ") and "CRC" in error


def test_corrupt_deflate_data() -> None:
    data = bytearray(make_zip([("a.png", png("a")), ("b.png", os.urandom(50_000) + bytes(50_000))]))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[1]
    start = info.header_offset + 30 + len("b.png")
    data[start + 100 : start + 200] = bytes(100)
    members, error, _ = read(bytes(data), "bad.zip")
    assert paths(members) == ["a.png"]
    assert error.startswith("bad.zip: ")


# -------------------------------------------------------------------------------------------------- RAR


def test_rar5_stored() -> None:
    files = [("a.png", png("a")), ("dir/ü b.png", png("b")), ("__MACOSX/._a.png", b"junk")]
    members, error, _ = read(make_rar5(files), "r5.rar")
    assert error is None
    assert [(m.path, m.data) for m in members] == files[:2]


def test_rar4_stored() -> None:
    files = [("a.png", png("a")), ("dir/b.png", png("b")), ("../../c.png", png("c"))]
    members, error, _ = read(make_rar4(files), "r4.rar")
    assert error is None
    assert [(m.path, m.data) for m in members] == [("a.png", png("a")), ("dir/b.png", png("b")), ("c.png", png("c"))]


def test_rar4_encrypted_member() -> None:
    members, error, _ = read(make_rar4([("a.png", png("a")), ("b.png", png("b"))], encrypted=("b.png",)), "r.rar")
    assert paths(members) == ["a.png"]
    assert error == "r.rar: 'b.png' is encrypted; no password is known"


@needs_unar
def test_solid_rar4_falls_back_to_unar(tmp_path: Path) -> None:
    files = [("a.png", png("a")), ("dir/b.png", png("b")), ("c.png", png("c"))]
    data = make_rar4(files, solid=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "solid.rar").write_bytes(data)
    before = snapshot(tmp_path)
    members, error, _ = read(tmp_path / "solid.rar", "solid.rar")
    assert error is None
    assert [(m.path, m.data) for m in members] == files
    assert snapshot(tmp_path) == before

    members, error, _ = read(data.replace(png("b"), png("B")), "solid.rar")
    assert [(m.path, m.data) for m in members] == files[:1]
    assert error == "solid.rar: 'dir/b.png' fails its CRC check (damaged data)"


@needs_unar
def test_solid_rar4_encrypted_member_via_unar() -> None:
    data = make_rar4([("a.png", png("a")), ("b.png", png("b"))], solid=True, encrypted=("b.png",))
    members, error, _ = read(data, "s.rar")
    assert paths(members) == ["a.png"]
    assert error == "s.rar: 'b.png' is encrypted; no password is known"

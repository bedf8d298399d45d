"""Atomic file writes and JSONL helpers: an interrupted run never leaves a half-written artifact.

Durable folders (checkpoints) are written with `write_durable` (fsync'd files), sealed with a
checksum manifest written last (`write_manifest`, checked by `check_manifest`) and moved into place
by `publish_dir`. A full disk is a `DiskFullError` naming the file; text that is not UTF-8 is an
error naming the file, line and column (`read_utf8`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moalign.core.errors import DataError, DiskFullError

MANIFEST_FORMAT = "moalign-manifest/1"


def _disk_full(error: OSError, path: Path, kept: str) -> OSError:
    """`error` as a DiskFullError naming `path` when the disk (or quota) is full, else itself."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(path, kept)
    return error


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _disk_full(e, path, "the previous version of it is kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: object) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def append_jsonl(path: str | Path, record: Mapping[str, object]) -> None:
    """Append one JSON record as a line and flush it to disk (append-only logs survive a kill)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _disk_full(e, path, "the lines before are kept") from None


def _utf8_error(path: Path, data: bytes, e: UnicodeDecodeError, first_line: int = 1) -> str:
    """Where `data` (the bytes of `path` from line `first_line`) stops being UTF-8, in words."""
    line = first_line + data.count(b"\n", 0, e.start)
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    utf16 = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return (f"{path}: line {line}, column {column} is not UTF-8 text (byte "
            f"{data[e.start]:#04x}){utf16}; save the file as UTF-8")


def read_utf8(path: str | Path, error: type[Exception] = DataError) -> str:
    """The text of a UTF-8 file (a BOM is dropped); other bytes raise `error` naming the file,
    line and column."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(_utf8_error(path, data, e)) from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file of objects. A last line without its newline that does not parse is a
    write torn by a kill and is ignored; any other line that is not a UTF-8 JSON object raises
    `DataError` naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = len(lines) - 1 if lines[-1] else None  # no final newline: the last write may be torn
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(lines):
        try:
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            record = json.loads(line)
        except UnicodeDecodeError as e:
            if i == torn:
                break
            raise DataError(_utf8_error(path, raw, e, i + 1)) from None
        except json.JSONDecodeError as e:
            if i == torn:
                break
            raise DataError(f"{path}: line {i + 1} is not valid JSON ({e.msg} at column "
                            f"{e.colno}); only a last line may be cut short by a crash: "
                            "repair or delete that line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {i + 1} holds a JSON {type(record).__name__}, "
                            "expected an object {...}")
        out.append(record)
    return out


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, object]]) -> Path:
    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    return atomic_write_text(path, text)


# ----------------------------------------------------------------------------- durable folders


def write_durable(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it; a full disk raises `DiskFullError` naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise _disk_full(e, path, "the previous version of it is kept") from None


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: str | Path, manifest: str | Path, meta: Mapping[str, object]) -> None:
    """Seal `folder`: write `manifest` (size and sha256 of every other file, plus `meta`) last,
    then fsync every sub-folder, so a manifest on disk means every file before it is too."""
    folder, manifest = Path(folder), Path(manifest)
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p != manifest}
    body = {"format": MANIFEST_FORMAT, **meta, "files": files}
    write_durable(manifest, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder}):
        fsync_dir(d)


def _manifest_files(manifest: Path) -> dict[str, Any] | str:
    """The `files` table of a manifest, or what is wrong with the manifest."""
    if not manifest.is_file():
        return f"no {manifest.name} (its save did not finish)"
    try:
        files = json.loads(manifest.read_bytes().decode("utf-8"))["files"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        return f"{manifest.name} is damaged"
    ok = isinstance(files, dict) and all(
        isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
        and not Path(k).is_absolute() and ".." not in Path(k).parts for k, v in files.items())
    return files if ok else f"{manifest.name} is damaged"


def check_manifest(folder: str | Path, manifest: str | Path,
                   required: Iterable[str] = ()) -> str | None:
    """None when every file `manifest` lists has its size and sha256, else what is wrong (one
    phrase naming the file: missing, empty, truncated or modified)."""
    folder = Path(folder)
    files = _manifest_files(Path(manifest))
    if isinstance(files, str):
        return files
    for rel in required:
        if rel not in files:
            return f"{Path(manifest).name} does not list {rel}"
    for rel, want in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        if size != want["bytes"]:
            what = "is empty (0 bytes)" if size == 0 else f"has {size} bytes"
            return f"{rel} {what}, {want['bytes']} expected (truncated or overwritten)"
        if sha256_file(path) != want["sha256"]:
            return f"{rel} does not match its sha256 in {Path(manifest).name} (modified or corrupt)"
    return None


def publish_dir(tmp: str | Path, target: str | Path, aside: str | Path) -> None:
    """Move the sealed folder `tmp` to `target`. An existing `target` is first renamed to `aside`
    and removed after; a kill in between leaves both complete folders on disk."""
    tmp, target, aside = Path(tmp), Path(target), Path(aside)
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if aside.exists():
        shutil.rmtree(aside)

"""A tree's RECORD files (``*.dist-info/RECORD``): read, write, and kept in step with the files.

The packer assigns files to distributions through RECORD, so pruning, stripping and bytecode
compilation all go through here to keep it true.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable

from ._errors import PackError


def dist_infos(root: str) -> list[str]:
    return sorted(d for d in os.listdir(root)
                  if d.endswith(".dist-info") and os.path.isdir(os.path.join(root, d)))


def norm_entry(entry: str) -> str | None:
    """A RECORD path as a relpath inside the tree, or None when it points outside."""
    if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
        return None
    norm = os.path.normpath(entry).replace(os.sep, "/")
    return None if norm == ".." or norm.startswith("../") else norm


def read_record(root: str, dist_info: str) -> list[list[str]]:
    path = os.path.join(root, dist_info, "RECORD")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return [row for row in csv.reader(fh) if row]
    except FileNotFoundError:
        return []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PackError(f"corrupt RECORD in {dist_info}: {exc}", path) from None


def write_record(root: str, dist_info: str, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    path = os.path.join(root, dist_info, "RECORD")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    os.replace(tmp, path)


def owners(root: str) -> dict[str, str]:
    """{relpath: dist-info folder} from every RECORD (first claimant wins)."""
    out: dict[str, str] = {}
    for d in dist_infos(root):
        for row in read_record(root, d):
            rel = norm_entry(row[0])
            if rel is not None:
                out.setdefault(rel, d)
    return out


def record_hash(path: str) -> tuple[str, str]:
    """(``sha256=...`` as RECORD writes it, size) of the file at ``path``."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode(), str(size)


def sync_records(
    root: str,
    *,
    added: dict[str, list[str]] | None = None,
    changed: Iterable[str] = (),
) -> None:
    """Make every RECORD agree with the tree.

    Rows for files that no longer exist are dropped; ``added`` ({dist-info: [relpath]}) rows
    are appended without a hash (as pip does for bytecode); ``changed`` files get a new hash
    and size.
    """
    changed_set = set(changed)
    for d in dist_infos(root):
        rows = read_record(root, d)
        new_rows: list[list[str]] = []
        listed: set[str] = set()
        dirty = False
        for row in rows:
            rel = norm_entry(row[0])
            if rel is not None and not os.path.isfile(os.path.join(root, rel)):
                dirty = True
                continue
            if rel is not None and rel in changed_set and not rel.endswith("/RECORD"):
                digest, size = record_hash(os.path.join(root, rel))
                row = [row[0], digest, size]
                dirty = True
            if rel is not None:
                listed.add(rel)
            new_rows.append(row)
        for rel in (added or {}).get(d, []):
            if rel not in listed:
                new_rows.append([rel, "", ""])
                listed.add(rel)
                dirty = True
        if dirty:
            write_record(root, d, new_rows)

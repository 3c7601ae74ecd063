"""The S3 disk cache gives way to a real bootstrap extraction that needs room in /tmp."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3_helpers import KiB

from lambdaslim import s3
from lambdaslim.build._pack import pack_tree
from lambdaslim.budget import get_budget

from helpers import make_dist, unzip_layer
from lambdaenv import run


def test_extraction_evicts_least_recently_used_cache_entries(
        client: Any, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a distribution of 2 MB of incompressible files, packed into a layer as Lambda would see it
    site = tmp_path / "site"
    make_dist(site, "bulky", "1.0", {
        "bulky/__init__.py": b"from pathlib import Path\nSIZE = sum(p.stat().st_size for p in Path(__file__).parent.glob('*.bin'))\n",
        **{f"bulky/blob{i}.bin": os.urandom(500_000) for i in range(4)},
    })
    pack_tree(str(site), str(tmp_path / "layer.zip"), quiet=True)
    opt = unzip_layer(tmp_path / "layer.zip", tmp_path / "opt")
    root = tmp_path / "lambdaslim-tmp"
    monkeypatch.setenv("LAMBDASLIM_TMP", str(root))
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "4MB")

    keys = []
    for _ in range(3):
        key = f"budget/{uuid.uuid4().hex}"
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=os.urandom(900 * KiB))
        s3.stream_get(s3_server.bucket, key, client=client, cache="tmp")
        keys.append(key)
    folder = get_budget().path("cache", "s3")
    entry_of = {json.loads((Path(folder) / n / "meta.json").read_text())["key"]: n for n in os.listdir(folder)}
    entries = [entry_of[k] for k in keys]
    os.utime(os.path.join(folder, entries[0]), (1, 1))
    os.utime(os.path.join(folder, entries[1]), (2, 2))
    # reading the first key again makes it the most recently used: the second is now the oldest
    assert s3.stream_get(s3_server.bucket, keys[0], client=client, cache="tmp", max_age=60).source == "tmp"
    oldest = entries[1]
    assert get_budget().available() < 2_000_000  # the extraction does not fit without eviction

    size = run("import lambdaslim.bootstrap, bulky\nreport(bulky.SIZE)", opt, root, LAMBDASLIM_TMP_LIMIT="4MB")
    assert size == 2_000_000
    left = os.listdir(folder)
    assert oldest not in left  # the least recently used entry made room
    assert 1 <= len(left) < 3
    assert get_budget().usage()["packages"] >= 2_000_000
    # what is left still serves reads; what was evicted is downloaded again
    sources = {s3.stream_get(s3_server.bucket, k, client=client, cache="tmp", max_age=60).source for k in keys}
    assert sources == {"tmp", "network"}

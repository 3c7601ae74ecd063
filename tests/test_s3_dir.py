"""fetch_dir / fetch_file: folders of S3 objects on disk, inside the budget, reused, atomic."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3_helpers import KiB, MiB, RequestLog

from lambdaslim import StorageBudgetError, s3
from lambdaslim.budget import get_budget

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_folder"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _upload(client: Any, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        client.put_object(Bucket=bucket, Key=prefix + rel, Body=data)


def _get_keys(log: RequestLog) -> list[str]:
    return sorted(url.split("?")[0].rsplit("/", 1)[-1] for m, url, _ in log.requests if m == "GET" and "list-type" not in url)


@pytest.fixture
def prefix() -> str:
    return f"dirs/{uuid.uuid4().hex}/"


def test_fetch_dir_downloads_a_complete_folder_in_the_budget(client: Any, s3_server: Any, prefix: str) -> None:
    files = {"config.json": b"{}", "empty.txt": b"", "sub/deeper/a.bin": os.urandom(300 * KiB),
             "big.bin": os.urandom(9 * MiB + 3), **{f"shard-{i}.bin": os.urandom(i * 1000) for i in range(1, 8)}}
    _upload(client, s3_server.bucket, prefix, files)
    client.put_object(Bucket=s3_server.bucket, Key=prefix + "sub/", Body=b"")  # a console's folder marker
    folder = s3.fetch_dir(f"s3://{s3_server.bucket}/{prefix}", client=client)
    assert _tree(folder) == files
    budget_cache = Path(get_budget().path("cache"))
    assert budget_cache in folder.parents
    assert not [n for n in os.listdir(folder.parent.parent) if n.startswith(".")]  # no staging left
    # the prefix without its trailing slash is the same folder, never "dirs/<id>-other/"
    client.put_object(Bucket=s3_server.bucket, Key=prefix.rstrip("/") + "-other/x", Body=b"x")
    assert s3.fetch_dir(f"s3://{s3_server.bucket}/{prefix.rstrip('/')}", client=client, max_age=60) == folder
    assert "x" not in _tree(folder)


def test_warm_reuse_and_revalidation_fetch_only_what_changed(client: Any, s3_server: Any, prefix: str) -> None:
    files = {"keep.bin": os.urandom(50 * KiB), "change.bin": b"old", "gone.bin": b"bye"}
    _upload(client, s3_server.bucket, prefix, files)
    url = f"s3://{s3_server.bucket}/{prefix}"
    folder = s3.fetch_dir(url, client=client, max_age=60)
    inode = (folder / "keep.bin").stat().st_ino
    log = RequestLog(client)
    assert s3.fetch_dir(url, client=client, max_age=60) == folder
    assert len(log) == 0  # within max_age: no request at all
    assert s3.fetch_dir(url, client=client, max_age=0) == folder
    assert len(log) == 1  # after it, unchanged: one listing
    log.clear()
    client.put_object(Bucket=s3_server.bucket, Key=prefix + "change.bin", Body=b"new!")
    client.put_object(Bucket=s3_server.bucket, Key=prefix + "added/n.txt", Body=b"n")
    client.delete_object(Bucket=s3_server.bucket, Key=prefix + "gone.bin")
    assert s3.fetch_dir(url, client=client) == folder
    assert _tree(folder) == {"keep.bin": files["keep.bin"], "change.bin": b"new!", "added/n.txt": b"n"}
    assert _get_keys(log) == ["change.bin", "n.txt"]  # the unchanged file is not downloaded again
    assert (folder / "keep.bin").stat().st_ino == inode


def test_budget_refused_before_any_download(client: Any, s3_server: Any, prefix: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _upload(client, s3_server.bucket, prefix, {f"part{i}.bin": os.urandom(400 * KiB) for i in range(4)})
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "1MB")
    log = RequestLog(client)
    with pytest.raises(StorageBudgetError) as info:
        s3.fetch_dir(f"s3://{s3_server.bucket}/{prefix}", client=client)
    assert prefix in str(info.value) and info.value.needed > 1_600_000
    assert _get_keys(log) == []  # only the listing was sent
    assert not os.path.exists(get_budget().path("cache", "s3dir")) or not [
        n for n in os.listdir(get_budget().path("cache", "s3dir"))]


def test_folders_are_evicted_least_recently_used_like_caches(client: Any, s3_server: Any, prefix: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "3MB")
    urls = []
    for name in ("a", "b"):
        _upload(client, s3_server.bucket, f"{prefix}{name}/", {"w.bin": os.urandom(1000 * KiB)})
        urls.append(f"s3://{s3_server.bucket}/{prefix}{name}/")
    first = s3.fetch_dir(urls[0], client=client, max_age=60)
    second = s3.fetch_dir(urls[1], client=client, max_age=60)
    os.utime(second.parent, (1, 1))  # b: used long ago
    os.utime(first.parent, None)
    with get_budget().reserve("an extraction", 1_500_000):
        pass
    assert first.exists() and not second.exists()
    log = RequestLog(client)
    assert _tree(s3.fetch_dir(urls[1], client=client, max_age=60)) == {"w.bin": client.get_object(
        Bucket=s3_server.bucket, Key=f"{prefix}b/w.bin")["Body"].read()}
    assert "w.bin" in _get_keys(log)  # evicted: downloaded again


def test_object_changed_mid_download_never_publishes_a_mixed_folder(client: Any, s3_server: Any,
                                                                   prefix: str) -> None:
    _upload(client, s3_server.bucket, prefix, {"a.txt": b"a1", "b.txt": b"b1"})
    url = f"s3://{s3_server.bucket}/{prefix}"
    folder = s3.fetch_dir(url, client=client)
    _upload(client, s3_server.bucket, prefix, {"a.txt": b"a2", "b.txt": b"b2"})
    writer = s3_server.client()

    def overwrite_b(request: Any, **_: Any) -> None:  # b changes after the listing, before its GET
        if request.method == "GET" and request.url.split("?")[0].endswith("/b.txt"):
            writer.put_object(Bucket=s3_server.bucket, Key=prefix + "b.txt", Body=b"b3")

    client.meta.events.register("before-send.s3", overwrite_b)
    with pytest.raises(s3.ObjectChangedError) as info:
        s3.fetch_dir(url, client=client)
    assert info.value.key == prefix + "b.txt"
    client.meta.events.unregister("before-send.s3", overwrite_b)
    assert _tree(folder) == {"a.txt": b"a1", "b.txt": b"b1"}  # the old version, whole
    assert not [n for n in os.listdir(folder.parent.parent) if n.startswith(".")]
    assert _tree(s3.fetch_dir(url, client=client)) == {"a.txt": b"a2", "b.txt": b"b3"}


def test_keys_that_cannot_be_files_and_empty_prefixes(client: Any, s3_server: Any, prefix: str) -> None:
    _upload(client, s3_server.bucket, prefix, {"a": b"1", "a/b": b"2"})
    with pytest.raises(s3.S3KeyPathError) as clash:
        s3.fetch_dir(f"s3://{s3_server.bucket}/{prefix}", client=client)
    assert isinstance(clash.value, ValueError) and clash.value.key == prefix + "a"
    with pytest.raises(s3.S3ObjectNotFoundError):
        s3.fetch_dir(f"s3://{s3_server.bucket}/{prefix}nothing/", client=client)
    with pytest.raises(s3.S3URLError):
        s3.fetch_dir("https://example.com/x/", client=client)


def test_fetch_file(client: Any, s3_server: Any, prefix: str) -> None:
    key = prefix + "model.txt"
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"v1")
    path = s3.fetch_file(f"s3://{s3_server.bucket}/{key}", client=client, max_age=60)
    assert path.name == "model.txt" and path.read_bytes() == b"v1"
    log = RequestLog(client)
    assert s3.fetch_file(s3_server.bucket, key, client=client, max_age=60) == path
    assert len(log) == 0
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"v2 longer")
    log.clear()
    assert s3.fetch_file(s3_server.bucket, key, client=client, max_age=0).read_bytes() == b"v2 longer"
    assert [m for m, _, _ in log.requests] == ["HEAD", "GET"]
    log.clear()
    assert s3.fetch_file(s3_server.bucket, key, client=client).read_bytes() == b"v2 longer"
    assert [m for m, _, _ in log.requests] == ["HEAD"]
    with pytest.raises(s3.S3ObjectNotFoundError):
        s3.fetch_file(s3_server.bucket, prefix + "missing", client=client)


def test_example_onnx_model_with_external_data(client: Any, s3_server: Any, prefix: str,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    spec = importlib.util.spec_from_file_location("make_model", EXAMPLE / "make_model.py")
    assert spec and spec.loader
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    weights, bias = make_model.build_model(tmp_path / "model")
    assert sorted(os.listdir(tmp_path / "model")) == ["model.onnx", "weights.bin"]
    assert (tmp_path / "model" / "weights.bin").stat().st_size >= weights.nbytes  # really external
    make_model.upload(tmp_path / "model", f"s3://{s3_server.bucket}/{prefix}", client=client)

    s3.set_client(client)
    monkeypatch.setenv("MODEL_URL", f"s3://{s3_server.bucket}/{prefix}")
    spec = importlib.util.spec_from_file_location("onnx_app", EXAMPLE / "app.py")
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    x = np.random.default_rng(1).standard_normal((3, weights.shape[0])).astype(np.float32)
    out = app.handler({"x": x.tolist()}, None)
    assert np.allclose(np.asarray(out["y"]), x @ weights + bias, atol=1e-4)

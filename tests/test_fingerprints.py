"""Content fingerprints: sha256 of files, remembered by size / mtime / inode so a large file is hashed once."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from cva_rec import fingerprints
from cva_rec.fingerprints import file_digest, fingerprint_files


def _old(path, seconds_ago=3600):
    """Give a file an mtime in the past (a file just written is never remembered: racy clock tick)."""
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


@pytest.fixture
def counted(monkeypatch):
    """Count the files actually read and hashed."""
    calls = []
    real = fingerprints.file_sha256

    def counting(path, *a, **k):
        calls.append(os.path.basename(path))
        return real(path, *a, **k)

    monkeypatch.setattr(fingerprints, "file_sha256", counting)
    return calls


def test_digest_is_the_files_sha256(tmp_path):
    f = tmp_path / "codes.npz"
    f.write_bytes(b"some bytes" * 1000)
    assert file_digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()  # independent reference


def test_cache_hit_does_not_read_the_file_again(tmp_path, counted):
    f = tmp_path / "features.npy"
    f.write_bytes(os.urandom(4096))
    _old(f)
    first = file_digest(f)
    assert file_digest(f) == first and file_digest(f) == first
    assert counted == ["features.npy"]  # hashed once, then remembered


def test_cache_invalidates_on_size_and_mtime_change(tmp_path, counted):
    f = tmp_path / "features.npy"
    f.write_bytes(b"a" * 100)
    _old(f, 3600)
    a = file_digest(f)
    f.write_bytes(b"b" * 100)  # same size, new content, new mtime
    _old(f, 1800)
    b = file_digest(f)
    assert b != a and b == hashlib.sha256(b"b" * 100).hexdigest()
    cached_mtime = f.stat().st_mtime_ns
    f.write_bytes(b"c" * 101)  # new size, same inode and the same mtime as the remembered entry
    os.utime(f, ns=(cached_mtime, cached_mtime))
    assert file_digest(f) == hashlib.sha256(b"c" * 101).hexdigest()
    assert counted == ["features.npy"] * 3


def test_recently_written_file_is_not_remembered(tmp_path, counted):
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    file_digest(f)
    file_digest(f)
    assert len(counted) == 2  # written this second: a same-tick rewrite would keep its mtime


def test_unwritable_cache_only_means_hashing_again(tmp_path, monkeypatch, counted):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CVA_REC_CACHE_DIR", str(blocker / "cache"))
    f = tmp_path / "x.bin"
    f.write_bytes(b"x" * 10)
    _old(f)
    assert file_digest(f) == file_digest(f) == hashlib.sha256(b"x" * 10).hexdigest()
    assert len(counted) == 2


def test_fingerprint_follows_content_not_place(tmp_path):
    a, b = tmp_path / "a" / "store", tmp_path / "b" / "copy"
    for d in (a, b):
        (d / "sub").mkdir(parents=True)
        (d / "meta.json").write_text("{}")
        (d / "sub" / "x.npy").write_bytes(b"123")
    fa, fb = fingerprint_files([a]), fingerprint_files([b])
    assert fa == fb and fa["bytes"] == 5 and fa["files"] == 2
    (b / "sub" / "x.npy").write_bytes(b"124")
    assert fingerprint_files([b])["sha256"] != fa["sha256"]
    (b / "sub" / "x.npy").write_bytes(b"123")
    (b / "sub" / "x.npy").rename(b / "sub" / "y.npy")  # a renamed file is another artifact
    assert fingerprint_files([b])["sha256"] != fa["sha256"]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        fingerprint_files([tmp_path / "absent"])

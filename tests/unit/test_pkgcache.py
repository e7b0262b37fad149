"""f7tbuild.pkgcache: the loopback pull-through cache of the package index used by builds.

An upstream index is served on loopback by the test (PEP 691 JSON for one project, PEP
503 HTML for another); the cache is asked through HTTP as pip and uv ask it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from f7tbuild import pkgcache

GOOD = b"PK-not-really-a-wheel-but-bytes"
BAD = b"tampered bytes"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
CLAIMED_SHA = hashlib.sha256(b"what the index claims").hexdigest()


class Upstream:
    """A tiny index: /simple/demo/ (JSON), /simple/htmlproj/ (HTML), /f/<name> files."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.requests.append(self.path)
                if self.path == "/simple/moved/":  # an index that moved its pages
                    self.send_response(301)
                    self.send_header("Location", "/simple/demo/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/simple/demo/":
                    body = json.dumps(
                        {
                            "meta": {"api-version": "1.1"},
                            "name": "demo",
                            "files": [
                                {
                                    "filename": "demo-1.0-py3-none-any.whl",
                                    "url": "../../f/demo-1.0-py3-none-any.whl",
                                    "hashes": {"sha256": GOOD_SHA},
                                    "core-metadata": {"sha256": "0" * 64},
                                    "requires-python": ">=3.8",
                                },
                                {
                                    "filename": "demo-1.0.tar.gz",
                                    "url": "/f/demo-1.0.tar.gz",
                                    "hashes": {"sha256": CLAIMED_SHA},
                                },
                                {"filename": "nohash.whl", "url": "/f/nohash.whl", "hashes": {}},
                            ],
                        }
                    ).encode()
                    kind = pkgcache.JSON_TYPE
                elif self.path == "/simple/htmlproj/":
                    body = (
                        "<html><body>"
                        f'<a href="/f/htmlproj-2.0-py3-none-any.whl#sha256={GOOD_SHA}" '
                        'data-requires-python="&gt;=3.9">htmlproj-2.0-py3-none-any.whl</a>'
                        "</body></html>"
                    ).encode()
                    kind = "text/html"
                elif self.path.endswith("-2.0-py3-none-any.whl") or self.path.endswith(
                    "-1.0-py3-none-any.whl"
                ):
                    body, kind = GOOD, "application/octet-stream"
                elif self.path == "/f/demo-1.0.tar.gz":
                    body, kind = BAD, "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.stop()


def get(url: str, accept: str = "*/*") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_pages_point_at_the_cache_and_files_are_verified_and_kept(
    upstream: Upstream, tmp_path: Path
) -> None:
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0) as index:
        code, kind, body = get(f"{index}Demo/")  # names are normalised
        assert code == 200 and kind == pkgcache.JSON_TYPE
        files = {f["filename"]: f for f in json.loads(body)["files"]}
        # Files without a sha256 are dropped; metadata hints removed (whole files fetched).
        assert set(files) == {"demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"}
        wheel = files["demo-1.0-py3-none-any.whl"]
        assert wheel["url"].startswith(index.replace("/simple/", "/files/"))
        assert "core-metadata" not in wheel and wheel["requires-python"] == ">=3.8"

        code, _, body = get(wheel["url"])
        assert (code, body) == (200, GOOD)
        kept = tmp_path / GOOD_SHA[:2] / GOOD_SHA / "demo-1.0-py3-none-any.whl"
        assert kept.read_bytes() == GOOD

        # A file whose bytes do not match the index's sha256 is refused and not kept.
        code, _, body = get(files["demo-1.0.tar.gz"]["url"])
        assert code == 502 and b"sha256" in body
        assert not list(tmp_path.glob(f"*/{CLAIMED_SHA}/demo-1.0.tar.gz"))
    fetched = [r for r in upstream.requests if r.startswith("/f/demo-1.0-py3")]
    assert len(fetched) == 1

    # A later build: the file comes from the host cache, not from upstream (stopped).
    upstream.stop()
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0) as index:
        code, _, body = get(index.replace("/simple/", "/files/") + wheel["url"].split("/files/")[1])
        assert (code, body) == (200, GOOD)


def test_html_pages_become_json(upstream: Upstream, tmp_path: Path) -> None:
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0) as index:
        code, _, body = get(f"{index}htmlproj/")
        assert code == 200
        (entry,) = json.loads(body)["files"]
        assert entry["filename"] == "htmlproj-2.0-py3-none-any.whl"
        assert entry["hashes"] == {"sha256": GOOD_SHA}
        assert entry["requires-python"] == ">=3.9"
        assert get(entry["url"])[2] == GOOD
        assert get(f"{index}missing-project/")[0] == 404


def test_upstream_and_directory_come_from_the_environment(tmp_path: Path) -> None:
    assert pkgcache.upstream_index({"F7T_INDEX_URL": "http://idx.example/simple"}) == (
        "http://idx.example/simple/"
    )
    assert pkgcache.upstream_index(
        {"PIP_INDEX_URL": "http://b.example/s/", "UV_DEFAULT_INDEX": "http://a.example/s"}
    ) == "http://a.example/s/"
    assert pkgcache.cache_dir({"F7T_PACKAGE_CACHE": "off"}) is None
    assert pkgcache.cache_dir({"F7T_PACKAGE_CACHE": str(tmp_path)}) == tmp_path
    assert pkgcache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == (
        tmp_path / "f7t4jhub" / "packages"
    )
    with pytest.raises(pkgcache.PackageCacheError, match="F7T_INDEX_PORT"):
        pkgcache.configured_port({"F7T_INDEX_PORT": "http"})


def test_pages_of_the_locks_are_prefetched_once(upstream: Upstream, tmp_path: Path) -> None:
    lock = tmp_path / "repo" / "images" / "x" / "requirements.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        "# header\nDemo==1.0 \\\n    --hash=sha256:00\n    # via something==2\nhtmlproj==2.0\n"
    )
    projects = pkgcache.lock_projects(tmp_path / "repo")
    assert projects == ["demo", "htmlproj"]
    with pkgcache.serve(
        directory=tmp_path / "cache", upstream=upstream.url, port=0, prefetch=projects
    ) as index:
        for _ in range(100):  # bounded: the prefetch runs in the background
            if {"/simple/demo/", "/simple/htmlproj/"} <= set(upstream.requests):
                break
            time.sleep(0.05)
        assert get(f"{index}demo/")[0] == 200
        assert get(f"{index}htmlproj/")[0] == 200
    assert upstream.requests.count("/simple/demo/") == 1
    assert upstream.requests.count("/simple/htmlproj/") == 1


def test_files_are_immutable_pages_are_not(upstream: Upstream, tmp_path: Path) -> None:
    """uv's and pip's HTTP caches may keep a file (its sha256 is in its URL), never a page."""
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0) as index:
        req = urllib.request.Request(f"{index}demo/", headers={"Accept": pkgcache.JSON_TYPE})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["Cache-Control"] == "no-cache"
            url = json.loads(resp.read())["files"][0]["url"]
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert "immutable" in resp.headers["Cache-Control"]


def test_pages_of_locked_projects_are_kept_while_they_list_every_pinned_file(
    upstream: Upstream, tmp_path: Path
) -> None:
    pinned = {"demo": frozenset({GOOD_SHA})}
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0, pinned=pinned) as index:
        assert get(f"{index}demo/")[0] == 200
        assert get(f"{index}htmlproj/")[0] == 200  # not pinned by a lock: not kept
    assert (tmp_path / "pages" / "demo.json").is_file()
    assert not (tmp_path / "pages" / "htmlproj.json").exists()
    asked = len(upstream.requests)

    # A later server: the kept page answers, the index is not asked.
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0, pinned=pinned) as index:
        code, _, body = get(f"{index}demo/")
        names = {f["filename"] for f in json.loads(body)["files"]}
        assert code == 200 and "demo-1.0-py3-none-any.whl" in names
        assert all(f["url"].startswith(index.replace("/simple/", "/files/"))
                   for f in json.loads(body)["files"])  # fmt: skip
    assert len(upstream.requests) == asked

    # A lock pinning a file the kept page lacks: the page is fetched again.
    newer = {"demo": frozenset({GOOD_SHA, "f" * 64})}
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0, pinned=newer) as index:
        assert get(f"{index}demo/")[0] == 200
    assert upstream.requests[asked:] == ["/simple/demo/"]


def test_pages_of_locked_projects_list_only_the_pinned_files(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A build installs only what the locks pin: a locked project's page (served and
    kept) has just those files; a page kept whole by an older version is served trimmed;
    other projects' pages stay whole."""
    pinned = {"demo": frozenset({GOOD_SHA})}
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0, pinned=pinned) as index:
        served = json.loads(get(f"{index}demo/")[2])
        other = json.loads(get(f"{index}htmlproj/")[2])
    assert [f["filename"] for f in served["files"]] == ["demo-1.0-py3-none-any.whl"]
    assert [f["filename"] for f in other["files"]] == ["htmlproj-2.0-py3-none-any.whl"]
    kept = json.loads((tmp_path / "pages" / "demo.json").read_text())
    assert [f["filename"] for f in kept["page"]["files"]] == ["demo-1.0-py3-none-any.whl"]

    # A kept page with more files than the locks pin (as older versions kept them).
    kept["page"]["files"].append(
        {"filename": "demo-0.9.tar.gz", "url": "/f/demo-0.9.tar.gz", "hashes": {"sha256": "e" * 64}}
    )
    (tmp_path / "pages" / "demo.json").write_text(json.dumps(kept))
    asked = len(upstream.requests)
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0, pinned=pinned) as index:
        served = json.loads(get(f"{index}demo/")[2])
    assert [f["filename"] for f in served["files"]] == ["demo-1.0-py3-none-any.whl"]
    assert len(upstream.requests) == asked
    kept = json.loads((tmp_path / "pages" / "demo.json").read_text())  # and kept trimmed
    assert [f["filename"] for f in kept["page"]["files"]] == ["demo-1.0-py3-none-any.whl"]


def test_redirects_are_followed_and_links_resolve_against_the_final_page(
    upstream: Upstream, tmp_path: Path
) -> None:
    with pkgcache.serve(directory=tmp_path, upstream=upstream.url, port=0) as index:
        code, _, body = get(f"{index}moved/")
        assert code == 200, body
        wheel = next(f for f in json.loads(body)["files"] if f["filename"].endswith(".whl"))
        # The page's link is relative ("../../f/..."): resolved against /simple/demo/.
        assert (get(wheel["url"])[0], upstream.requests[-1]) == (200, "/f/demo-1.0-py3-none-any.whl")
        assert get(f"{index}nothere/")[0] == 404  # upstream's 404 passed on


def test_lock_hashes_reads_every_pinned_digest(tmp_path: Path) -> None:
    lock = tmp_path / "images" / "x" / "a.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        "# comment\n"
        "Demo_Pkg==1.0 ; python_version >= '3.10' \\\n"
        f"    --hash=sha256:{'a' * 64} \\\n"
        f"    --hash=sha256:{'b' * 64}\n"
        "    # via something\n"
        f"other==2 \\\n    --hash=sha256:{'c' * 64}\n"
    )
    assert pkgcache.lock_hashes(tmp_path) == {
        "demo-pkg": frozenset({"a" * 64, "b" * 64}),
        "other": frozenset({"c" * 64}),
    }

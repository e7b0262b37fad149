"""A loopback pull-through cache of the Python package index for image builds.

Image builds install hashed locks with uv/pip. Each ``--no-cache`` build, and each
singleuser variant, used to download the same wheels again from inside the build. While
a build runs, f7tbuild serves ``http://127.0.0.1:<port>/simple/`` (fixed port, default
47311, env F7T_INDEX_PORT, so that the build argument ``INDEX_URL`` keeps layer cache
keys stable) and ``images/common/with-build-ca`` points pip and uv at it:

- ``/simple/<project>/``: the upstream index's project page (PEP 691 JSON, or HTML
  turned into JSON), fetched once per server, with every file URL rewritten to
  ``/files/<sha256>/<filename>?u=<upstream URL>``. The pages of every project named in
  the image locks (``images/**/*.lock``) are fetched in the background as soon as the
  server starts, 16 at a time: an installer asking for 77-123 pages one connection each
  spent 6-10 s resolving. The pages of the locks' projects are also kept in the
  directory and served from there while they list every file the locks pin for that
  project (a page lacking a newly locked file is fetched again): a build that finds them
  waits for no page. A locked project's page lists only the files the locks pin (the
  builds install nothing else: ``--require-hashes``): whole pages (42 MB of JSON for the
  140 projects, pydantic-core's alone 7 MB) took the server seconds of CPU to read and
  rewrite at every build while the build ran, and the installer seconds to parse;
- ``/files/<sha256>/<filename>``: served from the host cache (default
  ``~/.cache/f7t4jhub/packages``, env F7T_PACKAGE_CACHE); on a miss, downloaded from the
  upstream URL, its sha256 checked against the index's, then stored and served, marked
  immutable (``Cache-Control``) so that pip's and uv's own HTTP caches may keep it.

Nothing of it reaches an image: the files are downloaded into the build's own temporary
directories and verified again there by ``--require-hashes`` against our locks. The
upstream index is the host's (F7T_INDEX_URL, UV_DEFAULT_INDEX, UV_INDEX_URL,
PIP_INDEX_URL, else pip's default); the host's CA bundle verifies it.
"""

from __future__ import annotations

import email.message
import hashlib
import json
import os
import re
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3

from f7tbuild.output import status, warn

# Outside the CA server's range (47291 and the 9 ports it falls back to when busy).
DEFAULT_PORT = 47311
PORT_TRIES = 10
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: Kept-alive connections per upstream host (the prefetch runs 16 requests at a time).
POOL_SIZE = 16
#: Connection errors and resets are retried (idempotent GETs); HTTP statuses are not.
RETRIES = urllib3.Retry(total=3, connect=3, read=2, status=0, redirect=0, backoff_factor=0.2)
#: Redirects followed per request (an index moving its pages, a file host's CDN).
MAX_REDIRECTS = 5
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


class PackageCacheError(RuntimeError):
    """The package cache cannot be set up or served."""


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def upstream_index(env: dict[str, str] | None = None) -> str:
    """The index the host's pip/uv would use (its simple API base URL, ending in /)."""
    env = dict(os.environ if env is None else env)
    for name in ("F7T_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if env.get(name):
            return env[name].rstrip("/") + "/"
    try:  # pip's own default, so that no index host name is written here
        from pip._internal.models.index import PyPI
    except ImportError:
        raise PackageCacheError(
            "no package index configured and pip is not importable: set F7T_INDEX_URL "
            "to the simple index URL, or F7T_PACKAGE_CACHE=off"
        ) from None
    return str(PyPI.simple_url).rstrip("/") + "/"


def cache_dir(env: dict[str, str] | None = None) -> Path | None:
    """The host cache directory (None: F7T_PACKAGE_CACHE=off)."""
    env = dict(os.environ if env is None else env)
    raw = env.get("F7T_PACKAGE_CACHE", "")
    if raw.lower() in ("off", "0", "no", "false"):
        return None
    if raw:
        return Path(raw)
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "f7t4jhub" / "packages"


class _Anchors(HTMLParser):
    """File links of a PEP 503 HTML project page."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        attr = dict(attrs)
        href = attr.get("href") or ""
        url, _, fragment = href.partition("#")
        algo, _, digest = fragment.partition("=")
        entry: dict[str, Any] = {
            "filename": urllib.parse.unquote(url.rsplit("/", 1)[-1]),
            "url": url,
            "hashes": {algo: digest} if algo and digest else {},
        }
        if attr.get("data-requires-python"):
            entry["requires-python"] = attr["data-requires-python"]
        if attr.get("data-yanked") is not None:
            entry["yanked"] = attr["data-yanked"] or True
        self.files.append(entry)


def rewrite_page(page: dict[str, Any], page_url: str, base: str) -> dict[str, Any]:
    """The project page with file URLs through this cache; files without sha256 dropped.

    Metadata-file hints (PEP 658/714) are removed, so clients fetch whole (cached) files.
    """
    files = []
    for entry in page.get("files", []):
        digest = str((entry.get("hashes") or {}).get("sha256", "")).lower()
        filename = str(entry.get("filename", ""))
        if not _SHA256.match(digest) or not _FILENAME.match(filename):
            continue
        upstream = urllib.parse.urljoin(page_url, str(entry["url"]))
        query = urllib.parse.urlencode({"u": upstream})
        new = {
            k: v
            for k, v in entry.items()
            if k not in ("url", "core-metadata", "dist-info-metadata", "data-dist-info-metadata")
        }
        new["url"] = f"{base}files/{digest}/{urllib.parse.quote(filename)}?{query}"
        files.append(new)
    return {
        "meta": {"api-version": "1.0"},
        "name": page.get("name", ""),
        "files": files,
    }


class PackageCache:
    """The cache's state: upstream, directory, memoised project pages, download locks."""

    def __init__(
        self,
        directory: Path,
        upstream: str,
        ssl_context: ssl.SSLContext,
        pinned: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.directory = directory
        self.upstream = upstream
        self.ssl_context = ssl_context
        #: project -> the sha256 digests our locks pin (see ``_stored_page``).
        self.pinned = dict(pinned or {})
        self.stored_pages = 0
        self.pages: dict[str, tuple[str, bytes]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.hits = 0
        self.downloads = 0
        self.downloaded_bytes = 0
        self._proxies = urllib.request.getproxies()
        self._direct = urllib3.PoolManager(ssl_context=ssl_context, maxsize=POOL_SIZE)
        self._via_proxy: dict[str, urllib3.ProxyManager] = {}

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The connection pool for ``url``: through the host's proxy (``https_proxy`` and
        the like, ``no_proxy`` honoured) when it has one, else direct."""
        scheme, host = urllib.parse.urlsplit(url)[:2]
        proxy = self._proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host.rsplit(":", 1)[0]):
            return self._direct
        with self._guard:
            if proxy not in self._via_proxy:
                self._via_proxy[proxy] = urllib3.ProxyManager(
                    proxy, ssl_context=self.ssl_context, maxsize=POOL_SIZE
                )
            return self._via_proxy[proxy]

    @contextmanager
    def _open(self, url: str, accept: str) -> Iterator[tuple[urllib3.BaseHTTPResponse, str]]:
        """GET ``url`` on a kept-alive connection, streamed: (response, final URL after
        redirects, against which a page's relative file links resolve).

        Connections are reused: one new connection per page and file meant one DNS lookup
        each, and this machine's resolver stalls 5 s on about one lookup in 30, which made
        an empty cache's 140 pages take 10-25 s. A 4xx/5xx raises urllib's HTTPError
        (the handler passes 404 on), a connection failure PackageCacheError.
        """
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                resp = self._manager(url).request(
                    "GET", url, headers={"Accept": accept}, preload_content=False,
                    redirect=False, timeout=urllib3.Timeout(connect=30, read=60),
                    retries=RETRIES,
                )
            except urllib3.exceptions.HTTPError as exc:
                raise PackageCacheError(f"{url}: {exc}") from None
            location = resp.get_redirect_location()
            if not location:
                break
            resp.drain_conn()
            resp.release_conn()
            url = urllib.parse.urljoin(url, location)
        else:
            raise PackageCacheError(f"{url}: more than {MAX_REDIRECTS} redirects")
        try:
            if resp.status >= 400:
                raise urllib.error.HTTPError(
                    url, resp.status, resp.reason or "", email.message.Message(), None
                )
            yield resp, url
        except urllib3.exceptions.HTTPError as exc:  # a read that fails half-way
            raise PackageCacheError(f"{url}: {exc}") from None
        finally:
            resp.release_conn()

    def page(self, project: str, base: str) -> bytes:
        """The rewritten JSON page of one project (memoised for the server's life)."""
        key = normalise(project)
        with self._lock(f"page:{key}"):  # a request waits for the same page's prefetch
            return self._page(key, base)

    def prefetch(self, projects: Iterable[str], base: str) -> None:
        """Fetch these projects' pages into the memo (errors: left to the requests)."""

        def one(project: str) -> None:
            try:
                self.page(project, base)
            except (OSError, ValueError, PackageCacheError):
                pass

        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="f7t-prefetch") as pool:
            list(pool.map(one, sorted(set(projects))))

    def _page(self, key: str, base: str) -> bytes:
        with self._guard:
            cached = self.pages.get(key)
        if cached is not None and cached[0] == base:
            return cached[1]
        stored = self._stored_page(key)
        if stored is not None:
            data, final_url = stored
            trimmed = self._pinned_only(key, data)
            if len(trimmed["files"]) < len(data.get("files", [])):  # kept whole by an older version
                self._store_page(key, trimmed, final_url)
            data = trimmed
        else:
            url = f"{self.upstream}{key}/"
            accept = f"{JSON_TYPE}, {HTML_TYPE};q=0.5, text/html;q=0.1"
            with self._open(url, accept) as (resp, final_url):
                kind = resp.headers.get("Content-Type", "")
                body = resp.read()
            if "json" in kind:
                data = json.loads(body)
            else:
                parser = _Anchors()
                parser.feed(body.decode("utf-8", "replace"))
                data = {"name": key, "files": parser.files}
            data = self._pinned_only(key, data)
            self._store_page(key, data, final_url)
        out = json.dumps(rewrite_page(data, final_url, base)).encode()
        with self._guard:
            self.pages[key] = (base, out)
        return out

    def _pinned_only(self, key: str, data: dict[str, Any]) -> dict[str, Any]:
        """A locked project's page with only the files our locks pin (others: as is)."""
        need = self.pinned.get(key)
        if not need:
            return data
        files = [
            f
            for f in data.get("files", [])
            if isinstance(f, dict)
            and str((f.get("hashes") or {}).get("sha256", "")).lower() in need
        ]
        return {**data, "files": files}

    def _page_path(self, key: str) -> Path:
        return self.directory / "pages" / f"{key}.json"

    def _stored_page(self, key: str) -> tuple[dict[str, Any], str] | None:
        """The page kept on disk, if it lists every file our locks pin for ``key``.

        Only pages of projects our locks pin are kept: for them a page is good exactly
        when every locked file is on it (a new pin missing from it sends the request to
        the index). Other projects' pages are always fetched.
        """
        need = self.pinned.get(key)
        path = self._page_path(key)
        if not need or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
            data, url = dict(stored["page"]), str(stored["url"])
            have = {str((f.get("hashes") or {}).get("sha256", "")).lower() for f in data["files"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if not need <= have:
            return None
        with self._guard:
            self.stored_pages += 1
        return data, url

    def _store_page(self, key: str, data: dict[str, Any], url: str) -> None:
        if key not in self.pinned:
            return
        path = self._page_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{threading.get_ident()}.part")
        tmp.write_text(json.dumps({"url": url, "page": data}))
        tmp.replace(path)

    def _lock(self, digest: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(digest, threading.Lock())

    def file(self, digest: str, filename: str, upstream_url: str) -> Path:
        """The cached file, downloaded and verified first when missing."""
        path = self.directory / digest[:2] / digest / filename
        with self._lock(digest):
            if path.is_file():
                self.hits += 1
                return path
            if not upstream_url.startswith(("https://", "http://")):
                raise PackageCacheError(f"{filename} is not cached and has no upstream URL")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{filename}.part")
            sha = hashlib.sha256()
            size = 0
            with self._open(upstream_url, "*/*") as (resp, _url), tmp.open("wb") as out:
                while chunk := resp.read(1 << 20):
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            if sha.hexdigest() != digest:
                tmp.unlink(missing_ok=True)
                raise PackageCacheError(
                    f"{filename} from {upstream_url} has sha256 {sha.hexdigest()}, the index "
                    f"said {digest}: not cached"
                )
            tmp.replace(path)
            self.downloads += 1
            self.downloaded_bytes += size
            return path


def _handler(cache: PackageCache) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, kind: str, body: bytes, cache: str = "no-cache") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_file(self, path: Path) -> None:
            # Content-addressed (its sha256 is in the URL): a client's HTTP cache may keep
            # it for good. Sent by the kernel (sendfile), not read into this process.
            with path.open("rb") as fh:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(os.fstat(fh.fileno()).st_size))
                self.send_header("Cache-Control", FILE_CACHING)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.flush()
                    self.connection.sendfile(fh)

        def _fail(self, code: int, why: str) -> None:
            self._send(code, "text/plain; charset=utf-8", (why + "\n").encode())

        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            parts = [p for p in parsed.path.split("/") if p]
            base = f"http://{self.headers.get('Host') or '127.0.0.1'}/"
            try:
                if len(parts) == 2 and parts[0] == "simple":
                    self._send(200, JSON_TYPE, cache.page(parts[1], base))
                elif len(parts) == 3 and parts[0] == "files" and _SHA256.match(parts[1]):
                    filename = urllib.parse.unquote(parts[2])
                    if not _FILENAME.match(filename):
                        self._fail(400, f"bad file name {filename!r}")
                        return
                    upstream = urllib.parse.parse_qs(parsed.query).get("u", [""])[0]
                    path = cache.file(parts[1], filename, upstream)
                    self._send_file(path)
                else:
                    self._fail(404, "only /simple/<project>/ and /files/<sha256>/<name>")
            except urllib.error.HTTPError as exc:
                self._fail(exc.code if exc.code == 404 else 502, f"upstream: {exc}")
            except (OSError, ValueError, PackageCacheError) as exc:
                self._fail(502, f"f7tbuild package cache: {exc}")

        def do_HEAD(self) -> None:  # uv asks before it downloads (no ranges offered)
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


#: Cache-Control of ``/files/<sha256>/...`` (pages are ``no-cache``: a new lock's pin
#: must never meet a stale page). Without it uv counted every wheel of its cache stale
#: and downloaded it again.
FILE_CACHING = "public, max-age=31536000, immutable"


def configured_port(env: dict[str, str] | None = None) -> int:
    """The fixed port (env F7T_INDEX_PORT, default 47311)."""
    raw = (os.environ if env is None else env).get("F7T_INDEX_PORT", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise PackageCacheError(f"F7T_INDEX_PORT={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise PackageCacheError(f"F7T_INDEX_PORT={port} is out of range 1..65535")
    return port


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def lock_projects(root: Path) -> list[str]:
    """Normalised names of every project pinned in ``root/images/**/*.lock``."""
    names = {
        normalise(m.group(1))
        for lock in sorted((root / "images").rglob("*.lock"))
        for m in _PIN.finditer(lock.read_text(encoding="utf-8", errors="replace"))
    }
    return sorted(names)


_PIN_HASHES = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==[^\n\\]*((?:\\\s*\n\s*--hash=sha256:[0-9a-f]{64}\s*)+)",
    re.MULTILINE,
)


def lock_hashes(root: Path) -> dict[str, frozenset[str]]:
    """Project -> every sha256 pinned for it in ``root/images/**/*.lock``."""
    found: dict[str, set[str]] = {}
    for lock in sorted((root / "images").rglob("*.lock")):
        for m in _PIN_HASHES.finditer(lock.read_text(encoding="utf-8", errors="replace")):
            digests = re.findall(r"sha256:([0-9a-f]{64})", m.group(2))
            found.setdefault(normalise(m.group(1)), set()).update(digests)
    return {name: frozenset(d) for name, d in found.items()}


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The host's default trust (SSL_CERT_FILE honoured) plus the build's CA bundle."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


@contextmanager
def serve(
    ca_bundle: Path | None = None,
    directory: Path | None = None,
    upstream: str | None = None,
    port: int | None = None,
    prefetch: Iterable[str] = (),
    pinned: Mapping[str, frozenset[str]] | None = None,
) -> Iterator[str]:
    """Serve the cache on loopback; yield its index URL ('' when F7T_PACKAGE_CACHE=off).

    ``prefetch``: projects whose pages are fetched in the background right away.
    ``pinned`` (``lock_hashes``): the files our locks pin; those projects' pages are
    kept in the directory and reused while they list every pinned file.
    """
    directory = cache_dir() if directory is None else directory
    if directory is None:
        status("package cache off (F7T_PACKAGE_CACHE=off): builds download from the index")
        yield ""
        return
    try:
        upstream = upstream or upstream_index()
    except PackageCacheError as exc:
        warn(f"package cache off: {exc}")
        yield ""
        return
    directory.mkdir(parents=True, exist_ok=True)
    cache = PackageCache(directory, upstream, ssl_context(ca_bundle), pinned)
    base = configured_port() if port is None else port
    server: ThreadingHTTPServer | None = None
    for candidate in range(base, base + PORT_TRIES):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", candidate), _handler(cache))
            break
        except OSError:
            continue
    if server is None:
        raise PackageCacheError(
            f"ports {base}..{base + PORT_TRIES - 1} on 127.0.0.1 are all busy; "
            "set F7T_INDEX_PORT to a free port or F7T_PACKAGE_CACHE=off"
        )
    server.daemon_threads = True
    actual = server.server_address[1]
    if actual != base:
        warn(f"index port {base} is busy; serving on {actual}: layer cache keys differ")
    thread = threading.Thread(target=server.serve_forever, name="f7tbuild-pkgcache", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{actual}/simple/"
    status(f"package cache {directory} served at {url} (build steps only)")
    projects = list(prefetch)
    if projects:
        threading.Thread(
            target=cache.prefetch,
            args=(projects, f"http://127.0.0.1:{actual}/"),
            name="f7tbuild-prefetch",
            daemon=True,
        ).start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        status(
            f"package cache: {cache.hits} files from the cache, {cache.downloads} downloaded "
            f"({cache.downloaded_bytes / 1e6:.1f} MB); {cache.stored_pages} project pages "
            "reused from the directory"
        )

"""A stand-in Hugging Face Hub on localhost for the tests (no network): the endpoints huggingface_hub's
client calls, per ../shared/notes/hub-facts.md.

    hub = StandInHub().start()              # http://127.0.0.1:PORT; point HF_ENDPOINT at hub.url
    hub.add_repo("owner/name", {"config.json": b"{}", "model.safetensors": data}, gated=False)
    hub.gets["owner/name"]["model.safetensors"]   # how many times a file's bytes were served
    hub.stop()

Serves repo info with file sizes (`/api/models|datasets/ID[/revision/REV]`), the tree
(`/api/.../tree/REV[/PATH]`), `HEAD`/`GET` of `/[datasets/]ID/resolve/REV/PATH` with `X-Repo-Commit`, `ETag`
(git blob sha1, or sha256 + `X-Linked-Etag`/`X-Linked-Size` for weights and large files),
`Content-Length`, `Accept-Ranges` and `Range`; errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound,
EntryNotFound, GatedRepo with 401 without a token and 403 with one). `bytes_per_s` throttles file bodies.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".parquet", ".pth", ".onnx")
LFS_MIN_BYTES = 10 * 2**20


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    files: dict[str, bytes]
    gated: bool = False
    sha: str = ""
    allowed_tokens: set[str] = field(default_factory=set)  # tokens that may read a gated repo
    etags: dict[str, str] = field(default_factory=dict)

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES) or len(self.files[path]) >= LFS_MIN_BYTES

    def etag(self, path: str) -> str:
        if path not in self.etags:  # hashed once: a real Hub does not hash per request either
            data = self.files[path]
            self.etags[path] = hashlib.sha256(data).hexdigest() if self.is_lfs(path) else \
                hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return self.etags[path]


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.gets: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.bytes_per_s: float | None = None
        self.valid_tokens: set[str] = set()  # tokens /api/whoami-v2 accepts
        self.fail_after: dict[str, int] = {}  # path -> drop the connection after this many body bytes, once
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model", gated: bool = False,
                 allowed_tokens: set[str] | None = None) -> Repo:
        sha = hashlib.sha1((repo_id + "".join(sorted(files))).encode()).hexdigest()
        repo = Repo(repo_id, repo_type, dict(files), gated, sha, set(allowed_tokens or ()))
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def start(self) -> "StandInHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


_API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        return None

    # ------------------------------------------------------------------------------------------ routing
    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def _route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/api/whoami-v2":
            if self._token() not in self.hub.valid_tokens:
                return self._error(401, "InvalidCredentials", "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": "tester",
                               "auth": {"accessToken": {"displayName": "grpo-studio-test", "role": "read"}}})
        if path.startswith("/api/agent-harnesses"):
            return self._json({"standardEnvVars": [], "harnesses": {}})
        match = _API.match(path)
        if match:
            kind, repo_id, what, revision, sub = match.groups()
            repo = self._repo("dataset" if kind == "datasets" else "model", repo_id)
            if repo is None:
                return
            if what == "tree":
                return self._tree(repo, sub or "")
            return self._json(self._info(repo))
        match = _RESOLVE.match(path)
        if match:
            is_dataset, repo_id, revision, file_path = match.groups()
            repo = self._repo("dataset" if is_dataset else "model", repo_id)
            if repo is not None:
                self._resolve(repo, revision, file_path, body)
            return
        self._error(404, "EntryNotFound", "no such endpoint")

    def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
        return repo

    # ------------------------------------------------------------------------------------------ answers
    def _info(self, repo: Repo) -> dict:
        siblings = []
        for name, data in sorted(repo.files.items()):
            entry = {"rfilename": name, "size": len(data), "blobId": repo.etag(name)}
            if repo.is_lfs(name):
                entry["lfs"] = {"sha256": repo.etag(name), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {"id": repo.repo_id, "_id": repo.sha[:24], "sha": repo.sha, "private": False,
                "gated": "manual" if repo.gated else False, "disabled": False, "siblings": siblings,
                "tags": [], "downloads": 0, "likes": 0, "lastModified": "2026-01-01T00:00:00.000Z"}

    def _tree(self, repo: Repo, sub: str) -> None:
        sub = sub.strip("/")
        entries, folders = [], set()
        for name, data in sorted(repo.files.items()):
            if sub and not name.startswith(sub + "/"):
                continue
            parts = name.split("/")
            for i in range(1, len(parts)):
                folders.add("/".join(parts[:i]))
            entry = {"type": "file", "oid": repo.etag(name), "size": len(data), "path": name}
            if repo.is_lfs(name):
                entry["lfs"] = {"oid": repo.etag(name), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        if sub and not entries:
            return self._error(404, "EntryNotFound", f"{sub} does not exist", commit=repo.sha)
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)
                    if not sub or f.startswith(sub + "/")]
        self._json(entries)

    def _resolve(self, repo: Repo, revision: str, file_path: str, body: bool) -> None:
        if revision not in ("main", repo.sha):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if repo.gated and self._token() not in repo.allowed_tokens:
            code = 403 if self._token() else 401
            return self._error(code, "GatedRepo", f"Access to model {repo.repo_id} is restricted.")
        if file_path not in repo.files:
            return self._error(404, "EntryNotFound", f"{file_path} does not exist", commit=repo.sha)
        data = repo.files[file_path]
        start, end = 0, len(data) - 1
        ranged = self.headers.get("Range", "")
        match = re.match(r"bytes=(\d+)-(\d*)", ranged)
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else end
        self.send_response(206 if match else 200)
        self.send_header("X-Repo-Commit", repo.sha)
        etag = repo.etag(file_path)
        self.send_header("ETag", f'"{etag}"')
        if repo.is_lfs(file_path):
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        self.hub.gets[repo.repo_id][file_path] += 1
        self._send_body(data[start:end + 1], file_path)

    def _send_body(self, data: bytes, file_path: str) -> None:
        chunk = 64 * 1024
        limit = self.hub.fail_after.pop(file_path, None)
        sent = 0
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            if limit is not None and sent + len(piece) > limit:
                self.close_connection = True
                return
            try:
                self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):
                return
            sent += len(piece)
            if self.hub.bytes_per_s:
                time.sleep(len(piece) / self.hub.bytes_per_s)

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def _json(self, value) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# ------------------------------------------------------------------------------------------------ fixture
def hub_env(hub: StandInHub, home) -> dict[str, str]:
    """Environment variables that point a fresh process at the stand-in Hub and a private cache."""
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "0",
            "HF_TOKEN_PATH": str(home / "token"), "HF_HUB_DISABLE_TELEMETRY": "1"}


def point_huggingface_hub_at(hub: StandInHub, home, monkeypatch) -> None:
    """This process too: huggingface_hub read its settings into `constants` at import, so patch those as well
    (the test session runs with HF_HUB_OFFLINE=1; a test that talks to the stand-in turns it off here)."""
    from huggingface_hub import constants

    for name, value in hub_env(hub, home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    from huggingface_hub import hf_api

    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)  # the module-level client behind login() / whoami()


try:
    import pytest
except ImportError:  # the benchmark uses the server without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def stand_in_hub(tmp_path, monkeypatch):
        """A running stand-in Hub, with this process's huggingface_hub and HF cache pointed at it."""
        hub = StandInHub().start()
        hub.home = tmp_path / "hf"
        point_huggingface_hub_at(hub, hub.home, monkeypatch)
        yield hub
        hub.stop()

"""A loopback fake of the Hugging Face Hub for offline tests (model repos only).

It speaks the subset of the Hub HTTP protocol that `huggingface_hub` uses to create repos and branches, commit
files (`create_commit` / `upload_folder`, with every file in "regular" upload mode so nothing goes through LFS or
Xet), list trees, and download files (`hf_hub_download`, `snapshot_download`, `ModelCard.load`,
`from_pretrained`). Repos can be private; access is checked against a small table of bearer tokens.

It is NOT the real Hub: only the behaviour `lorat_hf` relies on is implemented, and answers are shaped after the
real server's headers (`X-Error-Code`, `X-Repo-Commit`, `ETag`) so that `huggingface_hub` raises its usual errors.

The server binds 127.0.0.1 only, runs in a daemon thread, answers at most `max_requests` requests, and stops by
itself after `idle_timeout` seconds without a request or `max_lifetime` seconds in all. Clients must see
`HF_ENDPOINT=<server.url>` BEFORE `huggingface_hub` is imported: run them in a subprocess (see `client_env`).

    with FakeHub() as hub:
        hub.add_repo("org/dinov2-tiny", {"config.json": b"..."})
        subprocess.run([sys.executable, "client.py"], env=hub.client_env(tmp_path), check=True)
        assert "README.md" in hub.files("org/lorat")
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY_BYTES = 256 * 1024 * 1024
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
INITIAL_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


@dataclass(frozen=True)
class User:
    """A token holder: `name` and the organisations it may write to; `write=False` is a read-only token."""

    name: str
    orgs: tuple[str, ...] = ()
    write: bool = True

    def can_write(self, namespace: str) -> bool:
        return self.write and namespace in (self.name, *self.orgs)

    def can_read(self, namespace: str) -> bool:
        return namespace in (self.name, *self.orgs)


DEFAULT_TOKENS = {
    "hf_fake_writer": User("tester", orgs=("org", "tiny-models")),
    "hf_fake_reader": User("reader", orgs=("org",), write=False),
}


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: content}
    messages: dict[str, str] = field(default_factory=dict)  # commit sha -> commit title

    def resolve(self, revision: str) -> str | None:
        """Commit sha of a branch name or a (full) commit sha; None when unknown."""
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.snapshots else None


class HubError(Exception):
    """An HTTP error answer with the Hub's `X-Error-Code` header."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class FakeHub:
    """In-memory Hub state plus the HTTP server thread that serves it (see the module docstring)."""

    def __init__(
        self,
        tokens: dict[str, User] | None = None,
        idle_timeout: float = 120.0,
        max_lifetime: float = 600.0,
        max_requests: int = 5000,
    ):
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.idle_timeout, self.max_lifetime, self.max_requests = idle_timeout, max_lifetime, max_requests
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._last_request = time.monotonic()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._connections: set = set()  # open client sockets, closed on stop() so kept-alive connections end too

    # ----- lifecycle -----
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The fake Hub is not running; call start() first.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._started = self._last_request = time.monotonic()
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Thread(target=self._watchdog, daemon=True)
        self._threads = [serve, watchdog]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, keep=None) -> None:
        """Stop serving: close the listening socket and every open connection but `keep` (clients then get refused)."""
        with self._stop_lock:
            if self._server is None or self._stopped.is_set():
                return
            self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = [c for c in self._connections if c is not keep]
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watchdog(self) -> None:
        while not self._stopped.wait(0.2):
            now = time.monotonic()
            if now - self._last_request > self.idle_timeout or now - self._started > self.max_lifetime:
                threading.Thread(target=self.stop, daemon=True).start()
                return

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def client_env(self, home: str | os.PathLike, token: str | None = None) -> dict[str, str]:
        """Environment for a client subprocess: this endpoint, a private HF_HOME, no inherited token or telemetry."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "HUGGINGFACE_"))}
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=str(Path(home) / "hf_home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_XET="1",
            HF_HUB_ETAG_TIMEOUT="30",
            TRANSFORMERS_VERBOSITY="error",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",  # tiny models: one thread avoids oversubscribing the cores pytest-xdist already uses
        )
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ----- direct state access for tests -----
    def add_repo(
        self, repo_id: str, files: dict[str, bytes], private: bool = False, branch: str = "main", message: str = "seed"
    ) -> str:
        """Create (or extend) a repo with `files` committed to `branch`; returns the commit sha."""
        with self._lock:
            repo = self.repos.get(repo_id) or self._create_repo(repo_id, private)
            parent = repo.branches.get(branch) or repo.branches["main"]
            return self._commit(repo, branch, parent, dict(files), [], message)

    def add_folder(self, repo_id: str, folder: str | os.PathLike, private: bool = False, branch: str = "main") -> str:
        """`add_repo` with every file under `folder` (relative paths, POSIX separators)."""
        root = Path(folder)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files, private=private, branch=branch)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Snapshot `{path: content}` of a repo at a branch or commit."""
        with self._lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            if sha is None:
                raise KeyError(f"{repo_id} has no revision {revision!r}")
            return dict(repo.snapshots[sha])

    def commit_messages(self, repo_id: str) -> list[str]:
        """Titles of every commit of a repo (all branches), oldest first."""
        with self._lock:
            return list(self.repos[repo_id].messages.values())

    # ----- state changes (called with the lock held) -----
    def _create_repo(self, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_id=repo_id, private=private)
        self.repos[repo_id] = repo
        sha = self._new_sha(repo_id, "initial commit")
        repo.snapshots[sha] = {".gitattributes": INITIAL_GITATTRIBUTES}
        repo.messages[sha] = "initial commit"
        repo.branches["main"] = sha
        return repo

    def _commit(
        self, repo: Repo, branch: str, parent: str, added: dict[str, bytes], deleted: list[str], message: str
    ) -> str:
        snapshot = dict(repo.snapshots[parent])
        for path in deleted:
            if path.endswith("/"):
                snapshot = {p: c for p, c in snapshot.items() if not p.startswith(path)}
            else:
                snapshot.pop(path, None)
        snapshot.update(added)
        sha = self._new_sha(repo.repo_id, message)
        repo.snapshots[sha] = snapshot
        repo.messages[sha] = message
        repo.branches[branch] = sha
        return sha

    def _new_sha(self, repo_id: str, message: str) -> str:
        return hashlib.sha1(f"{repo_id}:{next(self._counter)}:{message}".encode()).hexdigest()

    def _user(self, headers) -> User | None:
        authorization = headers.get("Authorization", "")
        if not authorization:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        user = self.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _readable_repo(self, repo_id: str, user: User | None) -> Repo:
        repo = self.repos.get(repo_id)
        namespace = repo_id.split("/")[0]
        if repo is None or (repo.private and (user is None or not user.can_read(namespace))):
            # The real Hub answers 401 for both missing and inaccessible private repos (no information leak).
            status = 401 if user is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    def _writable_repo(self, repo_id: str, user: User | None) -> Repo:
        if user is None:
            raise HubError(401, "You must be authenticated to write to a repository")
        repo = self._readable_repo(repo_id, user)
        if not user.can_write(repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo


def _tree_entries(snapshot: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    entries: dict[str, dict] = {}
    for path in sorted(snapshot):
        if not path.startswith(base):
            continue
        rest = path[len(base) :]
        if not recursive and "/" in rest:
            folder = base + rest.split("/")[0]
            entries.setdefault(folder, {"type": "directory", "path": folder, "oid": _oid(folder.encode())})
            continue
        if recursive:
            parts = rest.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = base + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": _oid(folder.encode())})
        entries[path] = {"type": "file", "path": path, "size": len(snapshot[path]), "oid": _oid(snapshot[path])}
    return list(entries.values())


def _card_metadata_errors(content: str) -> list[str]:
    """The checks of the Hub's README metadata validation that matter here: YAML front matter and model-index shape."""
    import yaml

    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if match is None:
        return []
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"invalid YAML front matter: {error}"]
    if not isinstance(metadata, dict):
        return ["the YAML front matter must be a mapping"]
    errors = []
    for entry in metadata.get("model-index") or []:
        if not entry.get("name"):
            errors.append('"model-index[0].name" is required')
        for result in entry.get("results") or []:
            if not (result.get("task") or {}).get("type"):
                errors.append('"model-index[0].results[].task.type" is required')
            dataset = result.get("dataset") or {}
            if not dataset.get("type") or not dataset.get("name"):
                errors.append('"model-index[0].results[].dataset" needs type and name')
            for metric in result.get("metrics") or []:
                if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                    errors.append('"model-index[0].results[].metrics[]" needs a type and a numeric value')
    return errors


def _oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._connections.discard(self.connection)
        super().finish()

    # ----- plumbing -----
    def _dispatch(self) -> None:
        hub = self.hub
        if hub._stopped.is_set():  # a kept-alive connection outliving stop(): drop it, as a vanished server would
            self.close_connection = True
            return
        with hub._lock:
            hub._last_request = time.monotonic()
            hub.requests.append((self.command, self.path))
            too_many = len(hub.requests) > hub.max_requests
        if too_many:
            self._send_json(503, {"error": "fake Hub request budget exhausted"})
            threading.Thread(target=hub.stop, daemon=True).start()
            return
        try:
            body = self._read_body()
            status, headers, payload = self._route(body)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            status, payload = error.status, json.dumps({"error": error.message, **error.extra}).encode()
            headers["Content-Type"] = "application/json"
        self._send(status, headers, payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HubError(413, f"Request body over {MAX_BODY_BYTES} bytes")
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise HubError(413, f"Request body over {MAX_BODY_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_json(self, status: int, value) -> None:
        self._send(status, {}, json.dumps(value).encode())

    @staticmethod
    def _json(value) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()

    # ----- routes -----
    def _route(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        hub = self.hub
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        if segments == ["_fake", "shutdown"] and self.command == "POST":
            # Test control: make the Hub unreachable (connection refused) from now on, e.g. to check offline loading.
            # Stopped before answering, so that the client's next request cannot reach the server.
            hub.stop(keep=self.connection)
            self.close_connection = True
            return 200, {"Connection": "close"}, b'{"stopped": true}'

        with hub._lock:
            user = hub._user(self.headers)
            if segments[:1] == ["api"]:
                return self._route_api(segments[1:], query, body, user)
            if len(segments) >= 5 and segments[2] == "resolve":
                repo_id = "/".join(segments[:2])
                return self._resolve(repo_id, segments[3], "/".join(segments[4:]), user)
        raise HubError(404, f"No route for {self.command} {split.path}")

    def _route_api(self, segments: list[str], query, body: bytes, user: User | None):
        hub, method = self.hub, self.command
        if segments == ["whoami-v2"] and method == "GET":
            if user is None:
                raise HubError(401, "Invalid user token.")
            orgs = [{"name": org, "type": "org"} for org in user.orgs]
            role = "write" if user.write else "read"
            return self._json(
                {"type": "user", "name": user.name, "orgs": orgs, "auth": {"accessToken": {"role": role}}}
            )
        if segments == ["validate-yaml"] and method == "POST":
            errors = _card_metadata_errors(json.loads(body or b"{}").get("content", ""))
            if errors:
                raise HubError(400, "; ".join(errors))
            return self._json({"errors": [], "warnings": []})
        if segments == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"), user)
        if segments[:1] != ["models"] or len(segments) < 3:
            raise HubError(404, f"Unsupported API route /api/{'/'.join(segments)} (the fake Hub serves model repos)")
        repo_id, rest = "/".join(segments[1:3]), segments[3:]
        if not rest and method == "GET":
            return self._json(self._info(hub._readable_repo(repo_id, user), "main"))
        action, args = rest[0], rest[1:]
        if action == "revision" and method == "GET":
            return self._json(self._info(hub._readable_repo(repo_id, user), "/".join(args)))
        if action == "tree" and method == "GET":
            repo = hub._readable_repo(repo_id, user)
            sha = self._sha(repo, args[0])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._json(_tree_entries(repo.snapshots[sha], "/".join(args[1:]), recursive))
        if action == "paths-info" and method == "POST":
            repo = hub._readable_repo(repo_id, user)
            snapshot = repo.snapshots[self._sha(repo, "/".join(args))]
            paths = self._form_or_json(body).get("paths", [])
            return self._json([e for e in _tree_entries(snapshot, "", True) if e["path"] in paths])
        if action == "preupload" and method == "POST":
            repo = hub._writable_repo(repo_id, user)
            self._sha(repo, "/".join(args))
            files = json.loads(body).get("files", [])
            answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]
            return self._json({"files": answer, "commitOid": repo.resolve("/".join(args))})
        if action == "commit" and method == "POST":
            return self._commit(hub._writable_repo(repo_id, user), "/".join(args), body)
        if action == "branch" and method == "POST":
            repo = hub._writable_repo(repo_id, user)
            branch = "/".join(args)
            if branch in repo.branches:
                raise HubError(409, f"Reference {branch} already exists")
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            repo.branches[branch] = self._sha(repo, start)
            return self._json({})
        raise HubError(404, f"Unsupported API route {method} /api/{'/'.join(segments)}")

    @staticmethod
    def _form_or_json(body: bytes) -> dict:
        try:
            return json.loads(body)
        except ValueError:
            return {k: v for k, v in parse_qs(body.decode()).items()}

    def _sha(self, repo: Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def _info(self, repo: Repo, revision: str) -> dict:
        sha = self._sha(repo, revision)
        siblings = [{"rfilename": path} for path in sorted(repo.snapshots[sha])]
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": sha,
            "private": repo.private,
            "siblings": siblings,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "disabled": False,
            "gated": False,
        }

    def _create_repo(self, payload: dict, user: User | None):
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "The fake Hub only hosts model repos")
        name, organization = payload.get("name", ""), payload.get("organization")
        if user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        repo_id = f"{organization or user.name}/{name}"
        if not REPO_ID_PATTERN.match(repo_id):
            raise HubError(400, f"Invalid repo name {repo_id!r}")
        if not user.can_write(repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to create a model under {repo_id.split('/')[0]}")
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            raise HubError(409, "You already created this model repo", url=url)
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        self.hub._create_repo(repo_id, private)
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def _commit(self, repo: Repo, revision: str, body: bytes):
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        summary, added, deleted = "", {}, []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and parent != repo.branches[revision]:
                    raise HubError(412, "A commit has happened since; parentCommit is outdated")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"].rstrip("/") + ("/" if key == "deletedFolder" else ""))
            else:
                raise HubError(400, f"The fake Hub does not support commit operation {key!r} (LFS/Xet/copy)")
        sha = self.hub._commit(repo, revision, repo.branches[revision], added, deleted, summary)
        url = f"{self.hub.url}/{repo.repo_id}/commit/{sha}"
        return self._json({"commitUrl": url, "commitOid": sha, "success": True, "pullRequestUrl": None})

    def _resolve(self, repo_id: str, revision: str, path: str, user: User | None):
        repo = self.hub._readable_repo(repo_id, user)
        sha = self._sha(repo, revision)
        snapshot = repo.snapshots[sha]
        if path not in snapshot:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content = snapshot[path]
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{_oid(content)}"',
            "X-Repo-Commit": sha,
        }
        return 200, headers, content


# ----------------------------------------------------------------------------------------------------------------
# Test helpers: clients in subprocesses, and tiny trackers to publish
# ----------------------------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITE_TOKEN, READ_TOKEN = "hf_fake_writer", "hf_fake_reader"
# A tiny DINOv2 (width 32, 2 layers) and tracker geometry: template 56 px (4x4 tokens), search 112 px (8x8).
TINY_DINOV2 = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=224, use_mask_token=False)


def run_client(hub: FakeHub, home, code: str, *args: str, token: str | None = None, timeout: float = 120.0):
    """Run Python `code` (with `args` in `sys.argv[1:]`) in a subprocess that talks to `hub`; returns its result."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=hub.client_env(home, token=token),
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_backbone_folder(folder, seed: int = 0):
    """Save a random tiny `Dinov2Model` to `folder` (what a tiny DINOv2 Hub repo holds)."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    Dinov2Model(Dinov2Config(**TINY_DINOV2)).save_pretrained(folder)
    return Path(folder)


def tiny_tracker_config(**overrides):
    from lorat_hf import LoraTrackerConfig

    values = dict(dinov2_config=dict(TINY_DINOV2), template_size=56, search_size=112, lora_r=4, lora_alpha=8)
    values.update(overrides)
    return LoraTrackerConfig(**values)


def make_adapter(backbone_folder, seed: int, backbone_id: str | None = None, **config_overrides):
    """A tiny tracker on the saved backbone with official-init LoRA and a random head / token types (per seed).

    The config names `backbone_id` when given, else the local backbone folder (as training on a local DINOv2 does).
    """
    import torch

    from lorat_hf import LoraTrackerModel, add_adapters

    base = LoraTrackerModel.from_backbone(str(backbone_folder), config=tiny_tracker_config(**config_overrides))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in [*base.tracker_head.parameters(), *base.embeddings.token_type_embeddings.parameters()]:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    torch.manual_seed(seed)
    model = add_adapters(base)
    if backbone_id is not None:
        model.get_base_model().config.backbone_name_or_path = backbone_id
    return model.eval()


def tracker_inputs(seed: int = 0, batch: int = 2) -> dict:
    """Fixed random inputs for the tiny geometry."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return {
        "template_pixel_values": torch.randn(batch, 3, 56, 56, generator=generator),
        "search_pixel_values": torch.randn(batch, 3, 112, 112, generator=generator),
        "template_token_type_ids": torch.randint(0, 2, (batch, 4, 4), generator=generator),
    }


if __name__ == "__main__":  # manual use: serve until idle for 10 minutes
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Hub on 127.0.0.1 until idle.")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    args = parser.parse_args()
    server = FakeHub(idle_timeout=args.idle_timeout, max_lifetime=24 * 3600).start()
    print(f"HF_ENDPOINT={server.url}  tokens: {', '.join(server.tokens)}", flush=True)
    server._stopped.wait()

"""The Hub, offline: `mocked_hub_http` routes huggingface_hub's HTTP through an in-process handler (the real client
code runs, no network is touched), and `FakeHub` is such a handler: an in-memory Hub with repositories, commits with
their files and Space variables, enough of the API for `hub.publish`, answered the way the Hub answers."""

import base64
import contextlib
import hashlib
import json
import re

import httpx2
from huggingface_hub.utils import _http


@contextlib.contextmanager
def mocked_hub_http(handler):
    """`handler(request) -> httpx2.Response`; every request huggingface_hub makes goes to it."""
    previous = _http._GLOBAL_CLIENT_FACTORY
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler)))
    _http.close_session()
    try:
        yield
    finally:
        _http.set_client_factory(previous)
        _http.close_session()


PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class FakeHub:
    def __init__(self):
        # (type, id) -> {"private", "sdk", "files", "commits", "variables"}
        self.repos: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []

    def repo(self, repo_type: str, repo_id: str) -> dict:
        return self.repos[(repo_type, repo_id)]

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        url, body = str(request.url), request.read()
        self.requests.append((request.method, url))
        path = url.split("huggingface.co", 1)[1].split("?")[0]
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization']}/{payload['name']}"
            if (repo_type, repo_id) in self.repos:
                return httpx2.Response(409, json={"error": "You already created this repo",
                                                  "url": f"https://huggingface.co/{PREFIX[repo_type]}{repo_id}"})
            self.repos[(repo_type, repo_id)] = {"private": payload.get("visibility") == "private",
                                                "sdk": payload.get("sdk"), "files": {}, "commits": [], "variables": {}}
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{PREFIX[repo_type]}{repo_id}"})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        match = re.fullmatch(r"/api/(model|dataset|space)s/([^/]+/[^/]+)/(preupload|commit)/(\w+)", path)
        if match:
            repo_type, repo_id, action, _ = match.groups()
            if (repo_type, repo_id) not in self.repos:
                return httpx2.Response(404, json={"error": "Repository not found"})
            if action == "preupload":
                files = json.loads(body)["files"]
                return httpx2.Response(200, json={"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            return self._commit(repo_type, repo_id, body)
        match = re.fullmatch(r"/api/spaces/([^/]+/[^/]+)/variables", path)
        if match and request.method == "POST":
            payload = json.loads(body)
            variables = self.repo("space", match.group(1))["variables"]
            variables[payload["key"]] = payload["value"]
            return httpx2.Response(200, json={k: {"value": v} for k, v in variables.items()})
        return httpx2.Response(404, json={"error": f"FakeHub does not know {request.method} {path}"})

    def _commit(self, repo_type: str, repo_id: str, body: bytes) -> httpx2.Response:
        repo = self.repo(repo_type, repo_id)
        changed = {}
        for line in body.decode().splitlines():
            entry = json.loads(line)
            if entry["key"] == "file":
                value = entry["value"]
                changed[value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "lfsFile":
                raise AssertionError("FakeHub said 'regular' for every file; an LFS upload means the client changed")
        repo["files"].update(changed)
        oid = hashlib.sha1(f"{repo_id}{len(repo['commits'])}".encode()).hexdigest()
        repo["commits"].append({"oid": oid, "files": sorted(changed)})
        commit_url = f"https://huggingface.co/{PREFIX[repo_type]}{repo_id}/commit/{oid}"
        return httpx2.Response(200, json={"commitUrl": commit_url, "commitOid": oid})

#!/usr/bin/env python3
"""A fake GitHub REST API for robit's pull request tests (stdlib only, 127.0.0.1 only).

It answers the two endpoints robit's output.pr uses the way api.github.com does:

  POST /repos/{owner}/{repo}/pulls   201 with the pull request; 422 "Validation Failed" with
                                     errors[].message "A pull request already exists for OWNER:BRANCH."
                                     when one is open for the same head and base
  GET  /repos/{owner}/{repo}/pulls   the open pull requests, filtered by ?head=OWNER:BRANCH&base=&state=

with 401 "Bad credentials" for a missing or wrong token and 404 "Not Found" for a repository it
does not hold. The API root is http://127.0.0.1:PORT/api/v3 (GitHub Enterprise's layout), printed as
the first line of stdout once it listens. Every API request is appended to STATE/requests.jsonl as
{"method", "path" (below the root), "query" (name -> [values]), "headers" (lower-cased names),
"body", "json"}; the pull requests it holds are in STATE/pulls.json ({"pulls": [...]}), which
GET /_fake/state also answers.

    scripts/fake-github.py --state-dir DIR --port 0 --token T --repo octo/hello [--fail-post 403]
"""
import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROOT = "/api/v3"
DOCS = "https://docs.github.com/rest"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--repo", action="append", required=True, help="owner/name; repeatable")
    parser.add_argument("--fail-post", type=int, help="answer every POST with this status")
    args = parser.parse_args()
    # A parent that blocks signals (a test runner's thread) must still be able to stop this server.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

    lock = threading.Lock()
    pulls = []  # dicts as GitHub returns them
    log_path = os.path.join(args.state_dir, "requests.jsonl")
    pulls_path = os.path.join(args.state_dir, "pulls.json")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def handle_any(self, method):
            url = urlsplit(self.path)
            body = self.read_body()
            if url.path == "/_fake/state":
                with lock:
                    return self.answer(200, {"pulls": pulls})
            if not url.path.startswith(ROOT + "/"):
                return self.answer(404, {"message": "Not Found", "documentation_url": DOCS})
            path = url.path[len(ROOT):]
            text = body.decode("utf-8", "replace")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            entry = {"method": method, "path": path, "query": parse_qs(url.query),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text, "json": parsed}
            with lock:
                with open(log_path, "a") as log:
                    log.write(json.dumps(entry) + "\n")

            auth = self.headers.get("Authorization", "")
            if auth not in ("Bearer " + args.token, "token " + args.token):
                return self.answer(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
            parts = path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "repos" or parts[3] != "pulls":
                return self.answer(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
            repo = parts[1] + "/" + parts[2]
            if repo not in args.repo:
                return self.answer(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
            if method == "GET":
                return self.list_pulls(repo, parse_qs(url.query))
            if method == "POST":
                if args.fail_post:
                    return self.answer(args.fail_post, {"message": "Resource not accessible by personal access token",
                                                        "documentation_url": DOCS, "status": str(args.fail_post)})
                return self.create_pull(repo, parsed)
            return self.answer(404, {"message": "Not Found", "documentation_url": DOCS})

        def list_pulls(self, repo, query):
            head = query.get("head", [None])[0]
            base = query.get("base", [None])[0]
            state = query.get("state", ["open"])[0]
            with lock:
                found = [p for p in pulls if p["_repo"] == repo
                         and (head is None or p["head"]["label"] == head)
                         and (base is None or p["base"]["ref"] == base)
                         and (state == "all" or p["state"] == state)]
            return self.answer(200, found)

        def create_pull(self, repo, payload):
            if not isinstance(payload, dict):
                return self.answer(400, {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"})
            missing = [k for k in ("title", "head", "base") if not isinstance(payload.get(k), str) or not payload[k]]
            if missing:
                return self.answer(422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422",
                                         "errors": [{"resource": "PullRequest", "code": "missing_field", "field": k} for k in missing]})
            owner = repo.split("/")[0]
            head = payload["head"] if ":" in payload["head"] else owner + ":" + payload["head"]
            with lock:
                if any(p["_repo"] == repo and p["head"]["label"] == head and p["base"]["ref"] == payload["base"]
                       and p["state"] == "open" for p in pulls):
                    return self.answer(422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422",
                                             "errors": [{"resource": "PullRequest", "code": "custom",
                                                         "message": "A pull request already exists for %s." % head}]})
                number = len(pulls) + 1
                pull = {"_repo": repo, "number": number, "state": "open", "title": payload["title"],
                        "body": payload.get("body"), "draft": bool(payload.get("draft", False)),
                        "url": "http://127.0.0.1:%d%s/repos/%s/pulls/%d" % (self.server.server_address[1], ROOT, repo, number),
                        "html_url": "https://github.example/%s/pull/%d" % (repo, number),
                        "head": {"label": head, "ref": head.split(":", 1)[1]},
                        "base": {"label": owner + ":" + payload["base"], "ref": payload["base"]}}
                pulls.append(pull)
                with open(pulls_path + ".tmp", "w") as out:
                    json.dump({"pulls": pulls}, out)
                os.replace(pulls_path + ".tmp", pulls_path)
            return self.answer(201, pull)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PATCH(self):
            self.handle_any("PATCH")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("http://127.0.0.1:%d%s" % (server.server_address[1], ROOT), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""fake_hub.py ROOT PORTFILE - a loopback stand-in for the Hugging Face hub,
for tests of `axserve pull` (never the real network).

ROOT/<owner>/<name>/... are the repositories. Optional ROOT/<owner>/<name>/
_control.json (not listed) sets misbehaviour:
  {"cut": ["file"]}           first download of file stops halfway (the
                              headers promise the full length)
  {"pointer": {"file": N}}    listing says N bytes, download serves a Git LFS
                              pointer instead
  {"list_extra": ["name"]}    extra (possibly hostile) names in the listing
  {"bad_sha": ["file"]}       the listing's lfs.sha256 for file is wrong
Files of 1000 bytes or more are listed with "lfs": {"sha256", "size"}, as
the hub does for LFS-stored files (sha256 computed here with hashlib).
Routes: GET /api/models/<owner>/<name>  -> {"siblings": [{"rfilename", "size"}]}
        GET /<owner>/<name>/resolve/main/<path> -> 302 to /_cdn/<owner>/<name>/<path>
        GET /_cdn/...                  -> the bytes; honours "Range: bytes=N-"
Every request is appended to ROOT/requests.log as
"METHOD PATH range=<Range or -> auth=<Authorization or ->".
Writes the chosen port to PORTFILE once listening."""
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORTFILE = sys.argv[1], sys.argv[2]
lock = threading.Lock()
cut_done = set()


def control(repo):
    p = os.path.join(ROOT, repo, "_control.json")
    return json.load(open(p)) if os.path.exists(p) else {}


def pointer_text(size):
    return ("version https://git-lfs.github.com/spec/v1\n"
            "oid sha256:" + "ab" * 32 + "\n"
            "size %d\n" % size).encode()


class Hub(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def record(self):
        with lock, open(os.path.join(ROOT, "requests.log"), "a") as f:
            f.write("%s %s range=%s auth=%s\n" % (self.command, self.path,
                                                    self.headers.get("Range", "-"),
                                                    self.headers.get("Authorization", "-")))

    def send(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record()
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) == 4:
            return self.listing("/".join(parts[2:4]))
        if len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
            loc = "/_cdn/" + "/".join(parts[:2] + parts[4:])
            return self.send(302, b"", extra=[("Location", urllib.parse.quote(loc))])
        if parts[0] == "_cdn" and len(parts) >= 4:
            return self.file("/".join(parts[1:3]), "/".join(parts[3:]))
        self.send(404, b'{"error": "not found"}')

    def listing(self, repo):
        d = os.path.join(ROOT, repo)
        if not os.path.isdir(d):
            return self.send(404, b'{"error": "Repository not found"}')
        ptr = control(repo).get("pointer", {})
        sib = []
        for base, _, files in os.walk(d):
            for fn in sorted(files):
                rel = os.path.relpath(os.path.join(base, fn), d)
                if rel == "_control.json":
                    continue
                real = os.path.getsize(os.path.join(d, rel))
                size = ptr.get(rel, real)
                e = {"rfilename": rel, "size": size}
                if real >= 1000:
                    h = hashlib.sha256(open(os.path.join(d, rel), "rb").read()).hexdigest()
                    if rel in control(repo).get("bad_sha", []):
                        h = "0" * 64
                    e["lfs"] = {"sha256": h, "size": size, "pointerSize": 132}
                sib.append(e)
        sib += [{"rfilename": n, "size": 1} for n in control(repo).get("list_extra", [])]
        self.send(200, json.dumps({"id": repo, "siblings": sib}).encode())

    def file(self, repo, rel):
        p = os.path.join(ROOT, repo, rel)
        if ".." in rel.split("/") or not os.path.isfile(p) or rel == "_control.json":
            return self.send(404, b"Entry not found", "text/plain")
        ctl = control(repo)
        if rel in ctl.get("pointer", {}):
            return self.send(200, pointer_text(ctl["pointer"][rel]), "text/plain")
        data = open(p, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(416, b"", "text/plain",
                                 [("Content-Range", "bytes */%d" % len(data))])
        body = data[start:]
        key = (repo, rel)
        with lock:
            cut = rel in ctl.get("cut", []) and key not in cut_done
            if cut:
                cut_done.add(key)
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.end_headers()
        if cut:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()

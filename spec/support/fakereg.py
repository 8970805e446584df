#!/usr/bin/env python3
"""crater's fault-injecting registry, for what a real registry will not do
on demand.

Serves a read-only subset of the registry HTTP API v2 from an OCI image
layout directory and misbehaves in the ways named by scenarios.  It binds
127.0.0.1 on a port the kernel picks and prints, on stdout:

    line 1: PORT                    (the registry)
    line 2: redirect HOST:PORT      (the second listener, see redirect-blob)

then serves until SIGTERM.  Stdlib only (python3 >= 3.7).

Images: a tag that is a ref name in the layout's index.json is that image;
otherwise the last repository component is tried with tag "latest" (so
`corrupt-blob/busybox:latest` is the layout's `busybox`).  Any manifest or
blob in the layout can be fetched by digest from any repository.

Scenarios apply to the whole server (--scenario, repeatable or
comma-separated) or to one repository: every leading component of the
repository name that is a scenario name turns it on for that repository
(`bearer/503-then-ok/busybox`).  Blob faults touch layer blobs only
(config blobs are served intact).

  corrupt-blob     layer bytes do not match the digest (same size)
  short-blob       layer is 1 byte shorter than its descriptor
  long-blob        layer has 16 extra bytes after the real ones
  reset-mid-blob   first GET of each layer: full Content-Length, half the
                   bytes, then a TCP reset; later (Range) requests served
  stall-blob       layer: half the bytes, then a --stall second pause
  503-then-ok      first --fail-count requests per path: 503 + Retry-After
  429              first --fail-count requests per path: 429 + Retry-After
  redirect-blob    blob GET: 307 to the second listener (other host name
                   and port), which records whether Authorization came
  bearer           token auth: 401 + WWW-Authenticate: Bearer realm=
                   http://127.0.0.1:PORT/token,service="fake",scope=...;
                   the token endpoint checks Basic creds if --user is set
  basic            Basic auth (--user/--password)
  schema1          manifests are Docker schema1 (signed, prettyjws)
  huge-manifest    manifests over 4 MiB
  dup-keys         manifest JSON with a duplicated "layers" key
  wrong-content-type  Content-Type disagrees with the manifest's mediaType

--chunked serves blobs with Transfer-Encoding: chunked (no Content-Length)
so a client cannot learn a wrong size from the headers.

Debug endpoints (never logged, no auth): GET /_debug/requests (JSON lines,
both listeners), GET /_debug/redirects (JSON lines, second listener),
GET /_debug/tokens (JSON {scope: tokens issued}), GET /_debug/info,
POST /_debug/reset (forget requests, counters, tokens).  Every request is
also appended to --log as a JSON line: seq, listener, method, path, status,
auth (bool), auth_scheme, range, repo, scenarios.
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse

SCENARIOS = [
    "corrupt-blob", "short-blob", "long-blob", "reset-mid-blob", "stall-blob",
    "503-then-ok", "429", "redirect-blob", "bearer", "basic", "schema1",
    "huge-manifest", "dup-keys", "wrong-content-type",
]
BLOB_FAULTS = {"corrupt-blob", "short-blob", "long-blob", "reset-mid-blob", "stall-blob"}

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_TYPES = {OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST}

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
PATH_RE = re.compile(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """The OCI layout: refs, blobs, and which blobs are layers."""

    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "index.json")) as f:
            self.index = json.load(f)
        self.refs = {}
        for m in self.index.get("manifests", []):
            name = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            if name:
                self.refs[name] = m
        self.media_types = {}  # manifest digest -> media type
        self.layers = set()
        for m in self.index.get("manifests", []):
            self._walk(m)

    def _walk(self, desc):
        mt = desc.get("mediaType")
        data = self.blob(desc["digest"])
        if data is None:
            return
        doc = json.loads(data)
        mt = mt or doc.get("mediaType")
        self.media_types[desc["digest"]] = mt
        for sub in doc.get("manifests", []):
            self._walk(sub)
        for layer in doc.get("layers", []):
            self.layers.add(layer["digest"])

    def blob(self, digest):
        if not DIGEST_RE.match(digest):
            return None
        p = os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            return None


class State:
    def __init__(self, args, layout):
        self.args = args
        self.layout = layout
        self.lock = threading.Lock()
        self.scenarios = set(args.scenario)
        self.port = None
        self.redirect = None  # "host:port"
        self.reset()
        self.logf = open(args.log, "a") if args.log else None
        self.generated = {}  # digest -> (bytes, content type) of made-up manifests

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.seq = 0
            self.requests = []
            self.fail_counts = {}
            self.reset_done = set()
            self.tokens = {}  # token -> (scopes, expiry)
            self.token_counts = {}

    def log(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry["t"] = round(time.time(), 3)
            self.requests.append(entry)
            if self.logf:
                self.logf.write(json.dumps(entry) + "\n")
                self.logf.flush()

    def count_fail(self, key):
        with self.lock:
            n = self.fail_counts.get(key, 0) + 1
            self.fail_counts[key] = n
            return n

    def first_reset(self, digest):
        with self.lock:
            if digest in self.reset_done:
                return False
            self.reset_done.add(digest)
            return True

    def issue_token(self, scopes):
        tok = secrets.token_hex(16)
        with self.lock:
            self.tokens[tok] = (set(scopes), time.time() + self.args.token_expires)
            key = " ".join(sorted(scopes))
            self.token_counts[key] = self.token_counts.get(key, 0) + 1
        return tok

    def check_token(self, tok, scope):
        with self.lock:
            ent = self.tokens.get(tok)
        if not ent:
            return "invalid_token"
        scopes, exp = ent
        if time.time() > exp:
            return "invalid_token"
        if scope is None:
            return None
        for s in scopes:
            parts = s.split(":")
            want = scope.split(":")
            if len(parts) >= 3 and parts[0] == want[0] and ":".join(parts[1:-1]) == ":".join(want[1:-1]) \
                    and "pull" in parts[-1].split(","):
                return None
        return "insufficient_scope"


def scenarios_for(state, repo):
    active = set(state.scenarios)
    if repo:
        for comp in repo.split("/"):
            if comp in SCENARIOS:
                active.add(comp)
            else:
                break
    return active


def schema1_manifest(state, repo, tag, doc):
    layers = doc.get("layers", [])
    body = {
        "schemaVersion": 1, "name": repo, "tag": tag, "architecture": "amd64",
        "fsLayers": [{"blobSum": l["digest"]} for l in reversed(layers)],
        "history": [{"v1Compatibility": json.dumps({"id": "%064x" % i})} for i in range(len(layers))],
        "signatures": [{"header": {"jwk": {"crv": "P-256", "kty": "EC", "x": "AA", "y": "AA"}, "alg": "ES256"},
                        "signature": "AAAA", "protected": "e30"}],
    }
    return json.dumps(body, indent=3).encode(), SCHEMA1_SIGNED


def huge_manifest(doc):
    d = dict(doc)
    d.setdefault("mediaType", OCI_MANIFEST)
    d["annotations"] = dict(d.get("annotations", {}))
    d["annotations"]["org.crater.padding"] = "x" * (4 * 1024 * 1024 + 4096)
    return json.dumps(d).encode()


def dup_keys_manifest(doc):
    # {"schemaVersion":2,...,"layers":[<bogus>],"layers":[<real>]}: a
    # last-wins parser sees the real layers, a first-wins one the bogus.
    bogus = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              "digest": "sha256:" + "0" * 64, "size": 1}]
    parts = []
    for k, v in doc.items():
        if k == "layers":
            parts.append('"layers":' + json.dumps(bogus))
        parts.append(json.dumps(k) + ":" + json.dumps(v))
    return ("{" + ",".join(parts) + "}").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crater-fakereg/1"
    listener = "main"

    def log_message(self, fmt, *a):  # quiet stderr; we log JSON ourselves
        pass

    @property
    def state(self):
        return self.server.state

    # --- plumbing --------------------------------------------------------
    def _auth_info(self):
        h = self.headers.get("Authorization")
        if not h:
            return False, None
        return True, h.split(" ", 1)[0]

    def _record(self, status, repo=None, active=None, extra=None):
        if self.path.startswith("/_debug/"):
            return
        auth, scheme = self._auth_info()
        e = {"listener": self.listener, "method": self.command, "path": self.path,
             "status": status, "auth": auth, "auth_scheme": scheme,
             "range": self.headers.get("Range"), "repo": repo,
             "scenarios": sorted(active) if active else []}
        if extra:
            e.update(extra)
        self.state.log(e)

    def _send(self, status, body=b"", ctype="application/json", headers=None, repo=None, active=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status, repo, active)

    def _error(self, status, code, msg, headers=None, repo=None, active=None):
        body = json.dumps({"errors": [{"code": code, "message": msg, "detail": None}]}).encode()
        self._send(status, body, "application/json", headers, repo, active)

    # --- dispatch --------------------------------------------------------
    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        if self.path == "/_debug/reset":
            self.state.reset()
            return self._send(200, b"{}")
        self._error(405, "UNSUPPORTED", "fakereg is read-only")

    def do_PUT(self):
        self._error(405, "UNSUPPORTED", "fakereg is read-only")

    do_PATCH = do_PUT
    do_DELETE = do_PUT

    def _dispatch(self):
        try:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            if path.startswith("/_debug/"):
                return self._debug(path)
            if path == "/token":
                return self._token(url)
            if path == "/v2/" or path == "/v2":
                active = scenarios_for(self.state, None)
                if self._faults(path, active) or not self._authorized(None, active):
                    return
                return self._send(200, b"{}", repo=None, active=active)
            m = PATH_RE.match(path)
            if not m:
                return self._error(404, "NOT_FOUND", "no route", repo=None)
            repo, kind, ref = m.group(1), m.group(2), m.group(3)
            active = scenarios_for(self.state, repo)
            if self._faults(path, active, repo) or not self._authorized(repo, active):
                return
            if kind == "manifests":
                return self._manifest(repo, ref, active)
            return self._blob(repo, ref, active)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _debug(self, path):
        st = self.state
        with st.lock:
            reqs = list(st.requests)
            tokens = dict(st.token_counts)
        if path == "/_debug/requests":
            body = "".join(json.dumps(r) + "\n" for r in reqs).encode()
            return self._send(200, body, "application/x-ndjson")
        if path == "/_debug/redirects":
            body = "".join(json.dumps(r) + "\n" for r in reqs if r["listener"] == "redirect").encode()
            return self._send(200, body, "application/x-ndjson")
        if path == "/_debug/tokens":
            return self._send(200, json.dumps(tokens).encode())
        if path == "/_debug/info":
            return self._send(200, json.dumps({"port": st.port, "redirect": st.redirect,
                                                "scenarios": sorted(st.scenarios),
                                                "known": SCENARIOS}).encode())
        return self._send(404, b"{}")

    # --- faults and auth -------------------------------------------------
    def _faults(self, path, active, repo=None):
        for name, status, code in (("503-then-ok", 503, "UNAVAILABLE"), ("429", 429, "TOOMANYREQUESTS")):
            if name in active:
                n = self.state.count_fail(name + " " + path)
                if n <= self.state.args.fail_count:
                    self._error(status, code, "try again (%d/%d)" % (n, self.state.args.fail_count),
                                {"Retry-After": str(self.state.args.retry_after)}, repo, active)
                    return True
        return False

    def _authorized(self, repo, active):
        args = self.state.args
        h = self.headers.get("Authorization", "")
        if "basic" in active:
            want = "Basic " + base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            if h != want:
                self._error(401, "UNAUTHORIZED", "authentication required",
                            {"WWW-Authenticate": 'Basic realm="fake"'}, repo, active)
                return False
        if "bearer" in active:
            scope = "repository:%s:pull" % repo if repo else None
            problem = "invalid_token"
            if h.startswith("Bearer "):
                problem = self.state.check_token(h[7:].strip(), scope)
                if problem is None:
                    return True
            challenge = 'Bearer realm="http://127.0.0.1:%d/token",service="fake"' % self.state.port
            if scope:
                challenge += ',scope="%s"' % scope
            if h.startswith("Bearer "):
                challenge += ',error="%s"' % problem
            self._error(401, "UNAUTHORIZED", "authentication required",
                        {"WWW-Authenticate": challenge}, repo, active)
            return False
        return True

    def _token(self, url):
        args = self.state.args
        q = urllib.parse.parse_qs(url.query)
        if args.user is not None:
            want = "Basic " + base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            if self.headers.get("Authorization", "") != want:
                return self._error(401, "UNAUTHORIZED", "bad credentials",
                                   {"WWW-Authenticate": 'Basic realm="fake-token"'})
        if q.get("service", [""])[0] != "fake":
            return self._error(400, "DENIED", "unknown service")
        scopes = []
        for s in q.get("scope", []):
            scopes.extend(s.split(" "))
        tok = self.state.issue_token(scopes)
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": args.token_expires,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        self._send(200, body)

    # --- manifests ---------------------------------------------------------
    def _resolve(self, repo, ref):
        lay = self.state.layout
        if ref.startswith("sha256:"):
            if ref in self.state.generated:
                return ref, None
            return (ref, lay.media_types.get(ref)) if lay.blob(ref) is not None and ref in lay.media_types else (None, None)
        desc = lay.refs.get(ref)
        if desc is None and ref == "latest":
            desc = lay.refs.get(repo.split("/")[-1])
        if desc is None:
            return None, None
        return desc["digest"], desc.get("mediaType") or lay.media_types.get(desc["digest"])

    def _manifest(self, repo, ref, active):
        st = self.state
        digest, mt = self._resolve(repo, ref)
        if digest is None:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown", repo=repo, active=active)
        if digest in st.generated:
            data, ctype = st.generated[digest]
        else:
            data = st.layout.blob(digest)
            ctype = mt or json.loads(data).get("mediaType") or OCI_MANIFEST
            doc = json.loads(data)
            made = None
            if "schema1" in active and "layers" in doc:
                made = schema1_manifest(st, repo, ref, doc)
            elif "huge-manifest" in active:
                made = (huge_manifest(doc), ctype)
            elif "dup-keys" in active and "layers" in doc:
                made = (dup_keys_manifest(doc), ctype)
            if made:
                data, ctype = made
                with st.lock:
                    st.generated[sha256(data)] = (data, ctype)
            if "wrong-content-type" in active and not made and "mediaType" not in doc:
                # the document must name its type for the mismatch to show
                data = json.dumps(dict(doc, mediaType=ctype)).encode()
                with st.lock:
                    st.generated[sha256(data)] = (data, ctype)
        if "wrong-content-type" in active:
            ctype = {OCI_MANIFEST: DOCKER_MANIFEST, OCI_INDEX: DOCKER_LIST,
                     DOCKER_MANIFEST: OCI_MANIFEST, DOCKER_LIST: OCI_INDEX}.get(ctype, OCI_MANIFEST)
        self._send(200, data, ctype, {"Docker-Content-Digest": sha256(data)}, repo, active)

    # --- blobs -------------------------------------------------------------
    def _blob(self, repo, digest, active, data=None):
        st = self.state
        if data is None:
            if not DIGEST_RE.match(digest):
                return self._error(400, "DIGEST_INVALID", "bad digest", repo=repo, active=active)
            data = st.layout.blob(digest)
            if data is None and digest in st.generated:
                data = st.generated[digest][0]
            if data is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown", repo=repo, active=active)
            if "redirect-blob" in active and self.command == "GET":
                loc = "http://%s/blobs/%s?repo=%s" % (st.redirect, digest, urllib.parse.quote(repo))
                return self._send(307, b"", None, {"Location": loc, "Docker-Content-Digest": digest},
                                  repo, active)
        layer = digest in st.layout.layers
        faults = (active & BLOB_FAULTS) if layer else set()
        if "corrupt-blob" in faults and data:
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            data = bytes(b)
        if "short-blob" in faults:
            data = data[:-1]
        if "long-blob" in faults:
            data = data + b"\0crater-extra\0\0\0"
        headers = {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes", "Etag": '"%s"' % digest}
        ctype = "application/octet-stream"
        rng = self.headers.get("Range")
        start, end, status = 0, len(data), 200
        if rng:
            m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self._send(416, b"", None, {"Content-Range": "bytes */%d" % len(data)}, repo, active)
            if m.group(1) == "":
                start = max(0, len(data) - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2) != "":
                    end = min(len(data), int(m.group(2)) + 1)
            if start >= len(data) or start >= end:
                return self._send(416, b"", None, {"Content-Range": "bytes */%d" % len(data)}, repo, active)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end - 1, len(data))
        body = data[start:end]
        chunked = st.args.chunked
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return self._record(status, repo, active)
        cut = None
        if "reset-mid-blob" in faults and self.command == "GET" and st.first_reset(digest):
            cut = "reset"
        elif "stall-blob" in faults:
            cut = "stall"
        if cut:
            half = len(body) // 2
            self._write(body[:half], chunked)
            self.wfile.flush()
            if cut == "reset":
                self._record(status, repo, active, {"fault": "reset", "sent": half})
                time.sleep(0.2)  # let the half reach the client before the RST
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            time.sleep(st.args.stall)
            self._write(body[half:], chunked)
        else:
            self._write(body, chunked)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self._record(status, repo, active, {"sent": len(body)})

    def _write(self, data, chunked):
        step = 64 * 1024
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            if chunked:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.wfile.write(piece)


class RedirectHandler(Handler):
    """The second listener: serves /blobs/<digest> and records whether an
    Authorization header arrived (it never should)."""
    listener = "redirect"

    def _dispatch(self):
        try:
            url = urllib.parse.urlsplit(self.path)
            m = re.match(r"^/blobs/(sha256:[a-f0-9]{64})$", url.path)
            if not m:
                return self._error(404, "NOT_FOUND", "no route")
            digest = m.group(1)
            data = self.state.layout.blob(digest)
            if data is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown")
            repo = urllib.parse.parse_qs(url.query).get("repo", [None])[0]
            active = scenarios_for(self.state, repo) - {"redirect-blob", "bearer", "basic"}
            self._blob(repo, digest, active, data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="crater fault-injecting registry")
    ap.add_argument("--layout", required=True, help="OCI image layout directory")
    ap.add_argument("--scenario", action="append", default=[],
                    help="scenario(s) for every repository (repeatable, comma-separated)")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--fail-count", type=int, default=2, help="503/429: failures per path")
    ap.add_argument("--retry-after", type=int, default=1, help="503/429: Retry-After seconds")
    ap.add_argument("--token-expires", type=int, default=300, help="bearer: token lifetime (s)")
    ap.add_argument("--stall", type=float, default=30, help="stall-blob: pause (s)")
    ap.add_argument("--redirect-host", default="127.0.0.2",
                    help="host the second listener binds and redirects name")
    ap.add_argument("--chunked", action="store_true", help="blobs without Content-Length")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", help="append JSON lines of every request here")
    args = ap.parse_args()
    flat = []
    for s in args.scenario:
        flat.extend(x for x in s.split(",") if x)
    for s in flat:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (known: %s)" % (s, ", ".join(SCENARIOS)))
    args.scenario = flat
    if ("basic" in flat) and args.user is None:
        ap.error("basic needs --user and --password")
    if args.user is not None and args.password is None:
        args.password = ""

    state = State(args, Layout(args.layout))
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = state
    state.port = srv.server_address[1]
    try:
        rsrv = Server((args.redirect_host, 0), RedirectHandler)
    except OSError:
        args.redirect_host = "localhost"
        rsrv = Server(("127.0.0.1", 0), RedirectHandler)
    rsrv.state = state
    state.redirect = "%s:%d" % (args.redirect_host, rsrv.server_address[1])
    threading.Thread(target=rsrv.serve_forever, daemon=True).start()

    import signal
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    sys.stdout.write("%d\nredirect %s\n" % (state.port, state.redirect))
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()

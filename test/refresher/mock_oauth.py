"""A local OAuth 2.0 token endpoint for the refresher's tests and the demo.

It rotates refresh tokens like HubSpot or Salesforce with rotation on: every
successful refresh issues a new access token and a new refresh token, and the
old refresh token is spent. A refresh token used a second time, or one it
never issued (tokens starting with "seed-" are accepted once, as the first
token of a chain), is answered 400 invalid_grant and counted as a reuse.

    python3 mock_oauth.py PORT_FILE [CLIENT_SECRET]

listens on 127.0.0.1 (a free port, written to PORT_FILE) and serves:
  POST /token      the refresh grant (client_secret_basic or client_secret_post)
  POST /_mode      body {"mode": ...}: ok | invalid_grant | error500 | slow |
                   ratelimit | malformed | huge | hold
  POST /_release   answers the requests held in mode hold
  GET  /_stats     counts, as JSON

A token is spent only when the answer is written to a client still connected
(a client that timed out or was killed spends nothing), and never in an error
mode.
"""

import base64
import json
import os
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "mock-client"
CLIENT_SECRET = sys.argv[2] if len(sys.argv) > 2 else "mock-client-secret"

lock = threading.Lock()
state = {
    "mode": "ok",
    "valid": set(),          # issued, not yet spent
    "spent": set(),
    "pending": set(),        # being answered
    "chain": {},             # refresh token -> its chain's seed
    "refreshes": {},         # seed -> successful refreshes
    "stats": {"requests": 0, "refreshed": 0, "reused": 0, "invalid_grant": 0,
              "bad_client": 0, "held": 0, "released": 0, "abandoned": 0, "errors": 0},
}
release = threading.Condition(lock)
counter = [0]


def count(key, n=1):
    state["stats"][key] = state["stats"].get(key, 0) + n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # no access log: requests carry secrets
        pass

    def send(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def client_gone(self):
        """True if the client closed its connection."""
        r, _, _ = select.select([self.connection], [], [], 0)
        if not r:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self):
        if self.path == "/_stats":
            with lock:
                stats = dict(state["stats"])
                stats["chains"] = {k: v for k, v in state["refreshes"].items()}
                stats["mode"] = state["mode"]
            return self.send(200, stats)
        self.send(404, {"error": "not_found"})

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n).decode()

    def do_POST(self):
        if self.path == "/_mode":
            with lock:
                state["mode"] = json.loads(self.body())["mode"]
            return self.send(200, {"mode": state["mode"]})
        if self.path == "/_release":
            with lock:
                state["mode"] = "ok"
                release.notify_all()
            return self.send(200, {"released": True})
        if self.path != "/token":
            return self.send(404, {"error": "not_found"})
        self.token(urllib.parse.parse_qs(self.body(), keep_blank_values=True))

    def client_ok(self, form):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            user, pw = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)
        else:
            user = form.get("client_id", [""])[0]
            pw = form.get("client_secret", [""])[0]
        return user == CLIENT_ID and pw == CLIENT_SECRET

    def error_mode(self, mode):
        """Answers in an error mode; True if it did."""
        if mode == "error500":
            self.send(500, {"error": "server_error"})
        elif mode == "ratelimit":
            self.send(429, {"error": "rate_limited"}, [("Retry-After", "120")])
        elif mode == "malformed":
            self.send(200, b'{"access_token": "unterminated')
        elif mode == "huge":
            self.send(200, b'{"access_token": "' + b"x" * (10 * 1024 * 1024) + b'"}')
        elif mode == "invalid_grant":
            self.send(400, {"error": "invalid_grant", "error_description": "revoked"})
        elif mode == "slow":
            time.sleep(6)
            if not self.client_gone():
                self.send(503, {"error": "too_slow"})
        else:
            return False
        with lock:
            count("errors")
        return True

    def hold(self):
        """Mode hold: waits for /_release; False if the client left meanwhile."""
        with lock:
            count("held")
            while state["mode"] == "hold":
                release.wait(0.1)
                if self.client_gone():
                    count("abandoned")
                    return False
            count("released")
        return True

    def token(self, form):
        with lock:
            count("requests")
            mode = state["mode"]
        if self.error_mode(mode) or (mode == "hold" and not self.hold()):
            return
        if form.get("grant_type", [""])[0] != "refresh_token":
            return self.send(400, {"error": "unsupported_grant_type"})
        if not self.client_ok(form):
            with lock:
                count("bad_client")
            return self.send(401, {"error": "invalid_client"})
        self.refresh(form.get("refresh_token", [""])[0])

    def refresh(self, rt):
        with lock:
            used = rt in state["spent"] or rt in state["pending"]
            fresh = not used and (rt in state["valid"] or rt.startswith("seed-"))
            if not fresh:
                count("reused" if used else "invalid_grant")
                answer = (400, {"error": "invalid_grant"})
            else:  # in flight: a second use meanwhile is a reuse
                state["valid"].discard(rt)
                state["pending"].add(rt)
                counter[0] += 1
                new_rt = "mock-rt-%d-%s" % (counter[0], os.urandom(6).hex())
                answer = (200, {"access_token": "mock-at-%d-%s" % (counter[0], os.urandom(6).hex()),
                                "token_type": "Bearer", "expires_in": 3600, "refresh_token": new_rt})
        if fresh and self.client_gone():
            with lock:
                state["pending"].discard(rt)
                if rt in state["chain"]:
                    state["valid"].add(rt)
            return
        self.send(*answer)
        if fresh:
            with lock:
                seed = state["chain"].pop(rt, rt)
                state["pending"].discard(rt)
                state["spent"].add(rt)
                state["valid"].add(new_rt)
                state["chain"][new_rt] = seed
                state["refreshes"][seed] = state["refreshes"].get(seed, 0) + 1
                count("refreshed")


def serve(handler, port_file, ssl_context=None):
    """Serves handler on 127.0.0.1 (TLS with ssl_context), its port written to port_file."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if ssl_context:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, port_file)
    server.serve_forever()


def main():
    serve(Handler, sys.argv[1])


if __name__ == "__main__":
    main()

"""A local HTTPS server publishing a JWKS, for the refresher's --jwks tests.

    python3 mock_jwks.py PORT_FILE CERT_FILE KEY_FILE

listens on 127.0.0.1 (a free port, written to PORT_FILE) with the given
certificate (issued by the test's throwaway CA) and serves:
  GET  /jwks        the key set, as the mode says: ok | error500 | slow (6 s) |
                    huge (10 MB) | redirect (302 to /moved)
  GET  /moved       the key set (a refresher that follows redirects lands here)
  POST /_set        body {"jwks": {...}, "cache_control": "max-age=120" | null,
                    "mode": "ok"}: any of them
  GET  /_stats      requests per path, as JSON
It holds public keys only.
"""

import json
import ssl
import sys
import threading
import time

import mock_oauth

lock = threading.Lock()
state = {"jwks": {"keys": []}, "cache_control": None, "mode": "ok", "stats": {}}


class Handler(mock_oauth.Handler):
    """mock_oauth's handler (send, no access log) with these routes."""

    def do_GET(self):
        with lock:
            state["stats"][self.path] = state["stats"].get(self.path, 0) + 1
            mode, doc, cc = state["mode"], json.dumps(state["jwks"]).encode(), state["cache_control"]
        if self.path == "/_stats":
            with lock:
                return self.send(200, json.dumps(state["stats"]).encode())
        if self.path == "/moved":
            return self.send(200, doc)
        if self.path != "/jwks":
            return self.send(404, b'{"error": "not_found"}')
        if mode == "error500":
            return self.send(500, b'{"error": "server_error"}')
        if mode == "slow":
            time.sleep(6)
            return self.send(200, doc)
        if mode == "huge":
            return self.send(200, b'{"keys": [], "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}')
        if mode == "redirect":
            return self.send(302, b"{}", [("Location", "/moved")])
        self.send(200, doc, [("Cache-Control", cc)] if cc else [])

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with lock:
            for k in ("jwks", "cache_control", "mode"):
                if k in body:
                    state[k] = body[k]
        self.send(200, b"{}")


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    mock_oauth.serve(Handler, sys.argv[1], ctx)


if __name__ == "__main__":
    main()

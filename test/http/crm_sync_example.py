#!/usr/bin/python3
"""A CRM-sync job talking to sdr_creds_server with `requests`: it stores an
organisation's Salesforce credentials, reads them back when it needs them,
lists what the organisation has, swaps in a refreshed access token, and
finally disconnects the integration.

    SDR_CREDS_URL=http://127.0.0.1:8080 SDR_CREDS_API_KEY=sk_live_... \\
        python3 test/http/crm_sync_example.py

It never prints a token or a key. Exits 0 when every step behaved as the API
promises; the HTTP tests run it end to end."""

import os
import sys

import requests

BASE = os.environ.get("SDR_CREDS_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ["SDR_CREDS_API_KEY"]
PROVIDER = os.environ.get("SDR_CREDS_PROVIDER", "salesforce")


class CredentialsClient:
    """A thin client for the integration-credentials API."""

    def __init__(self, base, api_key):
        self.base = base + "/integration-credentials"
        self.http = requests.Session()
        self.http.headers["X-API-Key"] = api_key

    def _call(self, method, path="", expect=(200,), **kw):
        r = self.http.request(method, self.base + path, timeout=10, **kw)
        if r.status_code not in expect:
            # the API's errors carry a "detail" and never a secret
            raise RuntimeError("%s %s -> %d %s" % (method, path or "/", r.status_code,
                                                  r.json().get("detail")))
        return r

    def store(self, provider, dsn, access_token, metadata):
        r = self._call("POST", "/", expect=(200, 201), json={
            "provider": provider, "dsn": dsn, "access_token": access_token, "metadata": metadata})
        return r.status_code == 201, r.json()

    def get_by_provider(self, provider):
        return self._call("GET", "/provider/" + requests.utils.quote(provider, safe="")).json()

    def get(self, credentials_id):
        return self._call("GET", "/" + credentials_id).json()

    def list(self, limit=100, offset=0):
        return self._call("GET", "/", params={"limit": limit, "offset": offset}).json()

    def delete(self, credentials_id):
        return self._call("DELETE", "/" + credentials_id).json()

    def status(self, path):
        return self.http.get(self.base + path, timeout=10).status_code


def step(msg):
    print("crm-sync: " + msg, flush=True)


def main():
    client = CredentialsClient(BASE, API_KEY)
    instance = "https://example-corp.my.salesforce.com"

    # 1. The OAuth flow finished: store what Salesforce gave us.
    created, cred = client.store(PROVIDER, instance, "00Dmadeup!AQ0.first-access-token", {
        "instance_url": instance, "api_version": "v58.0", "token_type": "Bearer",
        "refresh_token": "5Aep-made-up-refresh-token"})
    assert created, "a new integration is created (201)"
    assert list(cred) == ["id", "org_id", "provider", "dsn", "access_token", "metadata",
                          "created_at", "updated_at"], "field order"
    step("stored %s credentials %s" % (PROVIDER, cred["id"]))

    # 2. A sync run starts: fetch the credentials by provider.
    got = client.get_by_provider(PROVIDER)
    assert got["id"] == cred["id"]
    assert got["access_token"] == "00Dmadeup!AQ0.first-access-token"
    assert got["metadata"]["refresh_token"] == "5Aep-made-up-refresh-token"
    assert got["metadata"]["instance_url"] == instance
    step("read them back by provider")

    # 3. An admin page lists the organisation's integrations: no refresh tokens.
    listed = [c for c in client.list(limit=100) if c["id"] == cred["id"]]
    assert len(listed) == 1, "the integration is listed"
    assert "refresh_token" not in listed[0]["metadata"], "a listing carries no refresh token"
    assert listed[0]["metadata"]["instance_url"] == instance
    step("listed %d integration(s)" % len(client.list()))

    # 4. The access token expired: store the refreshed one (same provider = replace).
    created, refreshed = client.store(PROVIDER, instance, "00Dmadeup!AQ0.second-access-token", {
        **got["metadata"], "refresh_token": "5Aep-made-up-rotated-refresh-token"})
    assert not created, "storing again replaces (200)"
    assert refreshed["id"] == cred["id"], "the id survives a replace"
    assert refreshed["created_at"] == cred["created_at"]
    again = client.get(cred["id"])
    assert again["access_token"] == "00Dmadeup!AQ0.second-access-token"
    assert again["metadata"]["refresh_token"] == "5Aep-made-up-rotated-refresh-token"
    step("replaced the access token after a refresh")

    # 5. The customer disconnects Salesforce.
    gone = client.delete(cred["id"])
    assert gone == {"message": "Integration credentials %s deleted successfully" % cred["id"]}
    assert client.status("/provider/" + PROVIDER) == 404
    assert client.status("/" + cred["id"]) == 404
    step("deleted them")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, RuntimeError, requests.RequestException) as e:
        print("crm-sync: failed: %s" % (e or "assertion failed"), file=sys.stderr)
        sys.exit(1)

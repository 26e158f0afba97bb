"""`Idempotency-Key` through Traefik and the gateway (issue 22.4): a client retrying a run
trigger whose answer it lost gets the first answer back, not a second run; the key reaches the
pipelines service unchanged, and another organisation's identical key is its own."""

from __future__ import annotations

import uuid
from contextlib import closing

import httpx

KEY = "Idempotency-Key"


def signed_in_with_org(base_url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30.0)
    assert client.get("/api/auth/dev-login", params={"email": email}).status_code == 302
    r = client.post("/api/organisations", json={"name": email.split("@")[0]})
    assert r.status_code == 201, r.text
    return client


def test_retried_run_trigger_runs_once(base_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    with (
        closing(signed_in_with_org(base_url, f"idem-a-{suffix}@example.com")) as alice,
        closing(signed_in_with_org(base_url, f"idem-b-{suffix}@example.com")) as bob,
    ):
        job = alice.post("/api/jobs/", json={"name": "once", "cron": "0 3 * * *"}).json()
        url, key = f"/api/jobs/{job['id']}/run", f"retry-{suffix}"
        first = alice.post(url, json={"partition_date": "2024-01-02"}, headers={KEY: key})
        again = alice.post(url, json={"partition_date": "2024-01-02"}, headers={KEY: key})
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        runs = alice.get("/api/runs/", params={"job_id": job["id"]}).json()
        assert [r["id"] for r in runs] == [first.json()["run_id"]]

        r = alice.post(url, json={"partition_date": "2024-01-03"}, headers={KEY: key})
        assert (r.status_code, r.json()["detail"]) == (422, f"{KEY} '{key}' was already used for a different request")
        r = alice.post(url, headers={KEY: "x" * 256})
        assert r.status_code == 422 and r.json()["detail"].startswith(f"{KEY} must be 1 to 255")
        assert len(alice.get("/api/runs/", params={"job_id": job["id"]}).json()) == 1

        theirs = bob.post("/api/jobs/", json={"name": "once", "cron": "0 3 * * *"}).json()
        r = bob.post(f"/api/jobs/{theirs['id']}/run", json={"partition_date": "2024-01-02"}, headers={KEY: key})
        assert r.status_code == 200 and r.json()["run_id"] != first.json()["run_id"]
        assert "idempotent-replayed" not in r.headers

        # identity's creating POSTs too: a retried new organisation is the same one
        orgs = [bob.post("/api/organisations", json={"name": "Side"}, headers={KEY: key}) for _ in range(2)]
        assert [o.status_code for o in orgs] == [201, 201] and orgs[0].json() == orgs[1].json()
        assert [o["name"] for o in bob.get("/api/organisations").json()].count("Side") == 1


def test_retried_source_creation_is_one_source(base_url: str) -> None:
    """A creating POST other than a trigger, through Traefik and the gateway: the retry gets the
    same source (one row); another organisation reusing the key (the same body or not) creates its
    own, never seeing the first caller's answer."""
    suffix = uuid.uuid4().hex[:8]
    with (
        closing(signed_in_with_org(base_url, f"idem-src-a-{suffix}@example.com")) as alice,
        closing(signed_in_with_org(base_url, f"idem-src-b-{suffix}@example.com")) as mallory,
    ):
        key, body = f"source-{suffix}", {"key": "demo_source", "name": "Alice's"}
        first = alice.post("/api/sources/", json=body, headers={KEY: key})
        again = alice.post("/api/sources/", json=body, headers={KEY: key})
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert [s["id"] for s in alice.get("/api/sources/").json()] == [first.json()["id"]]
        r = alice.post("/api/sources/", json={**body, "name": "Other"}, headers={KEY: key})
        assert (r.status_code, r.json()["detail"]) == (422, f"{KEY} '{key}' was already used for a different request")
        assert len(alice.get("/api/sources/").json()) == 1

        probed = alice.post("/api/sources/", json=body, headers={KEY: f"{key}-probed"})
        assert probed.status_code == 200 and "idempotent-replayed" not in probed.headers

        # Mallory reuses Alice's keys: the same body, then another body (no 422 telling her the
        # key is in use); both are Mallory's own sources
        for mallorys_key, attempt in ((key, body), (f"{key}-probed", {**body, "name": "Mallory's"})):
            r = mallory.post("/api/sources/", json=attempt, headers={KEY: mallorys_key})
            assert r.status_code == 200 and "idempotent-replayed" not in r.headers, r.text
            assert r.json()["id"] not in (first.json()["id"], probed.json()["id"])
            assert r.json()["name"] == attempt["name"]
        assert {s["id"] for s in alice.get("/api/sources/").json()} == {first.json()["id"], probed.json()["id"]}
        assert len(mallory.get("/api/sources/").json()) == 2

"""The official web UI against the whole stack, in a real browser, as a person uses it.

1. An admin signs in, creates an organisation on the welcome page, adds a connection, adds the
   demo ads source with a new CSV destination, creates a job, runs it from the jobs page and
   watches the run reach success live (WebSocket) on the executions page in another tab, then
   opens its events; then backfills the last 7 days and opens the backfill's runs.
2. An admin invites a member from the organisation page; the invitee opens the link from the
   captured e-mail in their own browser, signs in and joins as a viewer; none of the viewer's
   edit actions succeeds, and nothing changed.
3. A member of two organisations switches between them on the executions page: the live view
   follows the new organisation only (web UI contract, addition 4).

Fixtures, the failure policy (console errors, 5xx, unexpected 4xx) and the screenshots:
conftest.py beside this file.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from icp_stack.pytest_plugin import StackHandle

INVITE_LINK = re.compile(r"(https?://\S+/invite/[A-Za-z0-9_\-]+)")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


def create_organisation(person, name: str) -> dict:
    page = person.page
    page.wait_for_url(re.compile(r"/welcome$"))
    expect(page.get_by_text("You don't belong to any organisation yet")).to_be_visible()
    person.snap("welcome")
    page.get_by_placeholder("My Organisation").fill(name)
    page.get_by_role("button", name="Create Organisation").click()
    person.toast("Organisation created")
    expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()  # the sidebar's organisation menu
    me = person.api("GET", "/api/auth/me")
    assert me["organisation"]["name"] == name and me["role"] == "admin", me
    return me


def sidebar(page: Page, entry: str) -> None:
    page.get_by_role("link", name=entry, exact=True).click()


def row(page: Page, text: str):
    return page.locator("tbody tr", has_text=text)


def row_action(page: Page, text: str, action: str) -> None:
    row(page, text).locator("button[aria-haspopup=menu]").click()
    page.get_by_role("menuitem", name=action).click()


# ------------------------------------------------------------------------------- admin's story


def test_admin_builds_a_pipeline_runs_it_and_watches_it_live(people) -> None:
    started = time.monotonic()
    alice = people("admin")
    page = alice.page
    alice.sign_in(unique("alice"), "Alice Admin")
    create_organisation(alice, "Acme Analytics")
    # Icons come from our own origin (any request leaving it fails the test: conftest) and are drawn.
    alice.wait_for("the sidebar's icons drawn", lambda: any(i.startswith("lucide:") for i in alice.drawn_icons()))

    # A connection resource (the demo ads platform's credentials).
    sidebar(page, "Connections")
    page.wait_for_url(re.compile(r"/resources/connection$"))
    page.get_by_role("button", name="New connection").click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_text("Demo Ads Connection").click()
    dialog.get_by_label("Name", exact=True).fill("Ads account")
    dialog.get_by_label("Client Id", exact=True).fill("client-123")
    dialog.get_by_label("Client Secret", exact=True).fill("s3cret")
    dialog.get_by_label("Refresh Token", exact=True).fill("refresh-xyz")
    alice.snap("connection-form")
    dialog.get_by_role("button", name="Create Connection").click()
    alice.toast('Connection "Ads account" created')
    expect(row(page, "Ads account")).to_contain_text("Demo Ads Connection")
    alice.snap("connection-created")
    [connection] = alice.api("GET", "/api/resources/?kind=connection")
    assert connection["key"] == "demo_ads_connection"
    data = alice.api("GET", f"/api/resources/{connection['id']}")["data"]
    assert data == {
        "client_id": "client-123",
        "client_secret": "s3cret",
        "refresh_token": "refresh-xyz",
        "region": "eu",
    }

    # The demo ads source, bound to the connection, writing to a new CSV destination.
    sidebar(page, "Sources")
    page.get_by_role("button", name="New source").click()
    dialog = page.get_by_role("dialog", name="New Source")
    dialog.get_by_text("Demo Ads", exact=True).click()
    expect(dialog.get_by_text("1 of 1 assets selected")).to_be_visible()
    expect(dialog.get_by_text("Campaigns")).to_be_visible()
    alice.snap("source-assets")
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_text("Ads account").click()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_label("Account Id").fill("acct-42")
    alice.snap("source-config")
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Create Destination").click()
    destination_dialog = page.get_by_role("dialog", name="New Destination")
    destination_dialog.get_by_text("Demo CSV").click()
    alice.snap("destination-form")
    destination_dialog.get_by_role("button", name="Create", exact=True).click()
    alice.toast("Demo CSV created")
    dialog.get_by_role("checkbox").check()
    alice.snap("source-destination")
    dialog.get_by_role("button", name="Create", exact=True).click()
    alice.toast("Demo Ads created")
    expect(row(page, "Demo Ads")).to_contain_text("Demo CSV")
    alice.snap("source-created")
    [destination] = alice.api("GET", "/api/destinations/")
    [source] = alice.api("GET", "/api/sources/")
    assert source["key"] == "demo_ads" and source["config"]["account_id"] == "acct-42", source
    assert source["resources"] == {"connection": connection["id"]}, source
    assert source["destination_ids"] == [destination["id"]], source
    assert [a["key"] for a in source["assets"]] == ["campaigns"], source

    # A daily job of that source.
    sidebar(page, "Jobs")
    page.get_by_role("button", name="New job").click()
    dialog = page.get_by_role("dialog", name="New Job")
    dialog.get_by_text("Demo Ads", exact=True).click()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_label("Name").fill("Daily ads")
    dialog.get_by_role("button", name="Daily at 6 AM").click()
    expect(dialog.get_by_text("Partitioned")).to_be_visible()
    alice.snap("job-form")
    dialog.get_by_role("button", name="Create Job").click()
    expect(row(page, "Daily ads")).to_contain_text("At 06:00")
    alice.snap("job-created")
    [job] = alice.api("GET", "/api/jobs/")
    assert (job["cron"], job["source_ids"], job["partitioned"]) == ("0 6 * * *", [source["id"]], True), job

    # The executions page open in a second tab, its WebSocket connected, before the run exists.
    runs_tab, handshakes = alice.open_tab("/executions")
    expect(runs_tab.get_by_text("Runs", exact=True).first).to_be_visible()
    alice.wait_for("the executions page's WebSocket", lambda: any(u.endswith("/api/ws") for u in handshakes))
    expect(runs_tab.get_by_text("0 run(s) total.")).to_be_visible()
    alice.snap("executions-before-run", runs_tab)
    calls_before = len(alice.api_calls)

    # Run the job from the jobs page (first tab): partition = today.
    page.bring_to_front()
    row_action(page, "Daily ads", "Run")
    expect(page.get_by_text(re.compile(r"This will queue a single run for \d{4}-\d{2}-\d{2}"))).to_be_visible()
    alice.snap("run-dialog")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/api/jobs/{job['id']}/run")
    ) as queued:
        page.get_by_role("button", name="Start Run").click()
    run_id = queued.value.json()["run_id"]
    alice.toast(f"Run queued ({run_id[:8]})")
    alice.snap("run-queued")

    # The other tab shows the new run and its success without reloading anything: the row comes
    # from the WebSocket (the UI counts "run(s) total" only from live INSERTs).
    runs_tab.bring_to_front()
    run_row = runs_tab.locator("tbody tr", has_text=run_id[:8])
    expect(run_row).to_be_visible()
    expect(runs_tab.get_by_text("1 run(s) total.")).to_be_visible()
    expect(run_row).to_contain_text("Daily ads")
    expect(run_row).to_contain_text("Success", timeout=90_000)
    alice.snap("run-success-live", runs_tab)
    frames = [f for f in alice.ws_frames[runs_tab] if f.get("table") == "runs" and f["record"].get("id") == run_id]
    assert frames and frames[0]["event"] == "INSERT", frames
    assert frames[-1]["event"] == "UPDATE" and frames[-1]["record"]["status"] == "success", frames
    reloads = [c for c in alice.api_calls[calls_before:] if c[0] is runs_tab and c[2].startswith("/api/runs")]
    assert reloads == [], f"the executions tab re-read runs instead of following the WebSocket: {reloads}"

    # The run's page: every event, first to last.
    run_row.click()
    runs_tab.wait_for_url(re.compile(f"/executions/runs/{run_id}$"))
    events = alice.api("GET", f"/api/runs/{run_id}/events")
    assert events[0]["event_type"] == "run_started" and events[-1]["event_type"] == "run_completed", events
    event_rows = runs_tab.locator("tbody tr", has_text=re.compile(r"\d\d:\d\d:\d\d\.\d{3}"))
    expect(event_rows).to_have_count(len(events))
    expect(event_rows.first).to_contain_text("Run Started")
    expect(event_rows.last).to_contain_text("Run Completed")
    expect(runs_tab.get_by_text("Success").first).to_be_visible()
    expect(runs_tab.get_by_text("campaigns").first).to_be_visible()
    alice.snap("run-events", runs_tab)

    # Back on the jobs page, the job shows its last run.
    page.bring_to_front()
    page.reload()
    expect(row(page, "Daily ads")).not_to_contain_text("—")
    alice.snap("job-last-run")

    # A backfill of the last 7 days from the same dialog; its page lists every run (no limit).
    row_action(page, "Daily ads", "Run")
    page.get_by_role("button", name="Last 7 days").click()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/backfill")) as queued:
        page.get_by_role("button", name="Start Backfill").click()
    backfill_id = queued.value.json()["backfill_id"]
    alice.toast(f"Backfill queued ({backfill_id[:8]})")
    runs_tab.bring_to_front()
    sidebar(runs_tab, "Executions")
    runs_tab.get_by_role("tab", name="Backfills").click()
    backfill_row = runs_tab.locator("tbody tr", has_text=backfill_id[:8])
    expect(backfill_row).to_contain_text("7")
    expect(backfill_row).to_contain_text("Success", timeout=90_000)
    alice.snap("backfill-success", runs_tab)
    backfill_row.click()
    runs_tab.wait_for_url(re.compile(f"/executions/backfills/{backfill_id}$"))
    partition_rows = runs_tab.locator("tbody tr", has_text=re.compile(r"\d{4}-\d{2}-\d{2}"))
    expect(partition_rows).to_have_count(7)
    for i in range(7):
        expect(partition_rows.nth(i)).to_contain_text("Success", timeout=30_000)
    alice.snap("backfill-runs", runs_tab)
    print(f"admin story: {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------------- invitation, viewer


def mails_to(mail_dir: Path, recipient: str) -> list[EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        if message["To"] == recipient:
            found.append(message)
    return found


def invitation_link(stack: StackHandle, recipient: str, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    while not (found := mails_to(stack.data_dir / "mail", recipient)):
        assert time.monotonic() < deadline, f"no invitation e-mail to {recipient}\n{stack.log_tail(30)}"
        time.sleep(0.2)
    body = found[-1].get_body(preferencelist=("plain",))
    assert body is not None
    match = INVITE_LINK.search(body.get_content())
    assert match, body.get_content()
    return match.group(1)


def test_invited_viewer_joins_from_the_email_and_cannot_edit(people, stack: StackHandle) -> None:
    started = time.monotonic()
    admin = people("admin")
    admin.sign_in(unique("ada"), "Ada Admin")
    org = create_organisation(admin, "Viewer Test Org")["organisation"]

    # What there is to (not) edit, set up through the API with the admin's session.
    connection = admin.api(
        "POST",
        "/api/resources/",
        data={
            "kind": "connection",
            "key": "demo_ads_connection",
            "name": "Ads account",
            "data": {"client_id": "c", "client_secret": "s", "refresh_token": "r"},
        },
    )
    destination = admin.api("POST", "/api/destinations/", data={"key": "demo_csv_destination", "name": "Demo CSV"})
    source = admin.api(
        "POST",
        "/api/sources/",
        data={
            "key": "demo_ads",
            "name": "Demo Ads",
            "resources": {"connection": connection["id"]},
            "destination_ids": [destination["id"]],
        },
    )
    job = admin.api("POST", "/api/jobs/", data={"name": "Daily ads", "cron": "0 6 * * *", "source_ids": [source["id"]]})

    # The admin invites a member from the organisation page (organisation menu > Manage).
    page = admin.page
    page.get_by_role("button", name="Viewer Test Org", exact=True).click()
    page.get_by_role("menuitem", name="Manage").click()
    page.wait_for_url(re.compile(r"/organization$"))
    expect(row(page, "Ada Admin")).to_contain_text("Admin")
    page.get_by_role("button", name="Invite").click()
    dialog = page.get_by_role("dialog", name="Invite Members")
    bob_email = unique("bob")
    dialog.get_by_placeholder("user@example.com").fill(bob_email)
    expect(dialog.get_by_role("combobox")).to_have_text("Viewer")
    admin.snap("invite-dialog")
    dialog.get_by_role("button", name="Send Invitations").click()
    admin.toast("1 invitation sent")
    expect(row(page, bob_email)).to_contain_text("Invited")
    admin.snap("invitation-sent")

    # The invitee follows the e-mail's link in their own browser and signs in.
    link = invitation_link(stack, bob_email)
    assert link.startswith(stack.base_url.rstrip("/") + "/invite/"), link
    bob = people("viewer")
    bob.page.goto(link)
    bob.sign_in(bob_email, "Bob Viewer", via="")
    bob.toast("You have joined the organisation")
    expect(bob.page.get_by_role("button", name="Viewer Test Org", exact=True)).to_be_visible()
    expect(row(bob.page, "Demo Ads")).to_be_visible()
    bob.snap("joined")
    me = bob.api("GET", "/api/auth/me")
    assert (me["organisation"]["id"], me["role"]) == (org["id"], "viewer"), me

    # A viewer reads everything, but no edit succeeds: the server refuses each (403) and the UI
    # says so.
    bp = bob.page
    bob.expect_refusal(403, rf"^/api/jobs/{job['id']}/run$")
    bob.expect_refusal(403, r"^/api/resources/?$")  # collections answer with and without the slash
    bob.expect_refusal(403, rf"^/api/sources/{source['id']}$")
    bob.expect_refusal(403, rf"^/api/jobs/{job['id']}$")

    sidebar(bp, "Jobs")
    row_action(bp, "Daily ads", "Run")
    bp.get_by_role("button", name="Start Run").click()
    bob.toast("Failed to queue run")
    bob.snap("viewer-run-refused")
    bp.get_by_role("button", name="Cancel").click()

    row_action(bp, "Daily ads", "Delete")
    bp.get_by_role("button", name="Delete", exact=True).last.click()
    bob.toast("Failed to delete job")
    expect(row(bp, "Daily ads")).to_be_visible()
    bob.snap("viewer-job-delete-refused")

    sidebar(bp, "Sources")
    row_action(bp, "Demo Ads", "Delete")
    bp.get_by_role("button", name="Delete", exact=True).last.click()
    bob.toast("Failed to delete source")
    bob.snap("viewer-source-delete-refused")

    sidebar(bp, "Connections")
    bp.get_by_role("button", name="New connection").click()
    dialog = bp.get_by_role("dialog", name="New Connection")
    dialog.get_by_text("Demo Ads Connection").click()
    dialog.get_by_label("Name", exact=True).fill("Bob's account")
    for label in ("Client Id", "Client Secret", "Refresh Token"):
        dialog.get_by_label(label, exact=True).fill("x")
    dialog.get_by_role("button", name="Create Connection").click()
    bob.toast("Failed to create connection")
    bob.snap("viewer-connection-refused")
    bp.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(row(bp, "Ads account")).to_be_visible()
    expect(row(bp, "Bob's account")).to_have_count(0)

    # Only admins are offered invitations.
    bp.get_by_role("button", name="Viewer Test Org", exact=True).click()
    bp.get_by_role("menuitem", name="Manage").click()
    bp.wait_for_url(re.compile(r"/organization$"))
    expect(row(bp, "Bob Viewer")).to_contain_text("Viewer")
    expect(bp.get_by_role("button", name="Invite")).to_have_count(0)
    bob.snap("viewer-organisation-page")

    # Nothing changed.
    assert admin.api("GET", "/api/runs/") == []
    assert [r["id"] for r in admin.api("GET", "/api/resources/")] == [connection["id"]]
    assert [s["id"] for s in admin.api("GET", "/api/sources/")] == [source["id"]]
    assert [j["id"] for j in admin.api("GET", "/api/jobs/")] == [job["id"]]
    page.reload()
    expect(row(page, bob_email)).to_contain_text("Viewer")
    expect(row(page, bob_email)).to_contain_text("Active")
    admin.snap("member-active")
    print(f"invitation and viewer: {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------ organisation switch, live


def test_live_executions_follow_an_organisation_switch(people, stack: StackHandle) -> None:
    """Web UI contract, addition 4: the UI keeps one WebSocket and does not filter messages by
    organisation; after a switch the server closes the socket, the UI reconnects and from then on
    sees only the new organisation's runs."""
    started = time.monotonic()
    carol = people("switcher")
    email = unique("carol")
    carol.sign_in(email, "Carol Two-Orgs")
    create_organisation(carol, "North Org")
    jobs: dict[str, dict] = {}
    orgs: dict[str, dict] = {}
    for name in ("South Org", "North Org"):  # ends with North active, as the browser shows it
        if name == "South Org":
            orgs[name] = carol.api("POST", "/api/organisations", data={"name": name})
        else:
            orgs[name] = next(o for o in carol.api("GET", "/api/organisations") if o["name"] == name)
            carol.api("POST", "/api/auth/switch-org", data={"organisation_id": orgs[name]["id"]})
        destination = carol.api("POST", "/api/destinations/", data={"key": "demo_csv_destination", "name": "CSV"})
        source = carol.api(
            "POST", "/api/sources/", data={"key": "demo_source", "name": "Demo", "destination_ids": [destination["id"]]}
        )
        jobs[name] = carol.api(
            "POST", "/api/jobs/", data={"name": f"{name} job", "cron": "0 6 * * *", "source_ids": [source["id"]]}
        )

    # A second session of the same person (a script, another device) starts the runs; its own
    # organisation switches do not touch the browser's session.
    with httpx.Client(base_url=stack.base_url, timeout=30.0) as script:
        assert script.get("/api/auth/dev-login", params={"email": email}).status_code == 302

        def run(org: str) -> str:
            r = script.post("/api/auth/switch-org", json={"organisation_id": orgs[org]["id"]})
            assert r.status_code == 200, r.text
            r = script.post(f"/api/jobs/{jobs[org]['id']}/run", json={"partition_date": "2024-01-02"})
            assert r.status_code == 200, r.text
            run_id: str = r.json()["run_id"]
            return run_id

        tab, handshakes = carol.open_tab("/executions")
        carol.wait_for("the WebSocket", lambda: len(handshakes) == 1)
        north_run = run("North Org")
        expect(tab.locator("tbody tr", has_text=north_run[:8])).to_contain_text("North Org job")
        carol.snap("north-run-live", tab)

        # Switch to South in the UI: the server closes the socket, the UI reconnects (after 1 s).
        tab.get_by_role("button", name="North Org", exact=True).click()
        tab.get_by_role("menuitem", name="Switch").hover()
        tab.get_by_role("menuitem", name="South Org").click()
        expect(tab.get_by_role("button", name="South Org", exact=True)).to_be_visible()
        carol.wait_for("the WebSocket to reconnect", lambda: len(handshakes) == 2)
        frames_before = len(carol.ws_frames[tab])
        late_north_run = run("North Org")
        south_run = run("South Org")
        # (The UI itself keeps what it loaded before the switch: North's earlier run stays listed
        # and South's job shows as "Deleted", since the jobs it knows are North's.)
        south_row = tab.locator("tbody tr", has_text=south_run[:8])
        expect(south_row).to_contain_text("Success", timeout=90_000)
        expect(tab.locator("tbody tr", has_text=late_north_run[:8])).to_have_count(0)
        carol.snap("south-run-live-after-switch", tab)
        seen = {f["record"].get("run_id", f["record"].get("id")) for f in carol.ws_frames[tab][frames_before:]}
        assert south_run in seen and late_north_run not in seen, seen
    print(f"organisation switch: {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------- assistant without a model


def reply_as_the_ui_reads_it(stream: str) -> str:
    """The web UI's reader of the chat stream (web-ui-contract.md): each line starting with
    `data: ` is one JSON event, the text parts of events whose author is not `user` are appended
    to the reply, other lines are ignored."""
    reply = ""
    for line in stream.split("\n"):
        if not line.startswith("data: "):
            continue
        try:
            event = json.loads(line[len("data: ") :])
        except ValueError:
            continue
        parts = (event.get("content") or {}).get("parts") or []
        text = "".join(part.get("text") or "" for part in parts)
        if text and event.get("author") != "user":
            reply += text
    return reply


def test_assistant_without_a_model_says_so_in_the_chat(people_without_model) -> None:
    """The newcomer's default (no GOOGLE_API_KEY): the chat shows the assistant's explanation, and
    trying again leaves one chat in "Recent", not one more empty chat per try."""
    dana = people_without_model("newcomer")
    page = dana.page
    dana.sign_in(unique("dana"), "Dana Newcomer")
    create_organisation(dana, "Dana's Data")

    for attempt in (1, 2):
        question = f"What sources are configured? ({attempt})"
        page.goto("/agent")
        prompt = page.get_by_placeholder("Ask anything...")
        prompt.fill(question)
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/chat")) as chat:
            prompt.press("Enter")
            page.wait_for_url(re.compile(r"/agent/chat/[0-9a-f-]+"))
        assert chat.value.status == 200
        stream = chat.value.text()  # the whole stream, as the browser received it
        text = reply_as_the_ui_reads_it(stream)
        assert text.startswith("The assistant has no model configured") and "GOOGLE_API_KEY" in text, stream
        expect(page.get_by_text(question)).to_be_visible()
        reply = page.get_by_text("The assistant has no model configured")
        try:
            expect(reply).to_be_visible(timeout=10_000)
        except AssertionError:
            # The official UI's markdown renderer (MDC) watches the message's text only once its
            # first, asynchronous render of the empty placeholder is done: a reply arriving in
            # between is in the page's state but never drawn. Seen on loaded machines (the stream
            # above complete, the message empty); a person asks again, the renderer warm by then.
            print(f"attempt {attempt}: the UI drew an empty reply; asking again in the same chat")
            prompt = page.get_by_placeholder("Ask anything...")
            prompt.fill(question)
            prompt.press("Enter")
            expect(reply.last).to_be_visible(timeout=20_000)
        expect(reply.last).to_contain_text("GOOGLE_API_KEY")
        dana.snap(f"no-model-reply-{attempt}")

    page.goto("/agent")  # a fresh list from the server
    expect(page.get_by_role("link", name=re.compile(r"^Chat [0-9a-f]{8}"))).to_have_count(1)
    dana.snap("one-chat-in-recent")
    assert len(dana.api("GET", "/api/agent/sessions")) == 1

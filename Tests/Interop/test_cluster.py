"""Two nodes sharing one PostgreSQL store (storage.url): what one node changes, the other acts on.

scripts/test.sh starts a private PostgreSQL cluster and names it in HIKYAKU_TEST_POSTGRES_URL; each test
makes a database of its own there. The nodes run on 127.0.0.2 and 127.0.0.3, each with its own data
directory (spool, queue index) and the same secrets.key, as docs/storage.md asks."""

import email
import email.policy
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from conftest import dnsmasq
from sink import ScriptedSink
from test_feedback import DSN
from test_webhooks import Receiver, native_events

POSTGRES = os.environ.get("HIKYAKU_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(not POSTGRES and not os.environ.get("CI"),
                                reason="no PostgreSQL: run through scripts/test.sh (under CI a missing server fails)")


def new_database():
    """A fresh database on the test cluster, and its URL."""
    assert POSTGRES, "HIKYAKU_TEST_POSTGRES_URL is not set"
    name = "cluster_" + uuid.uuid4().hex
    query = parse_qs(urlparse(POSTGRES).query)
    subprocess.run(["psql", "-h", query["host"][0], "-p", query["port"][0], "-U", "hikyaku", "-d", "postgres", "-q",
                    "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
    return POSTGRES.replace("/postgres?", f"/{name}?")


def call(node, method, path, token, body=None):
    response = requests.request(method, f"http://{node.host}:{node.api_port}" + path, json=body, timeout=30,
                                headers={"Authorization": "Bearer " + token})
    return response.status_code, (response.json() if response.content else None)


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_cluster(make_server, monkeypatch, delivery=None, dns_port=9, url=None, extra=None):
    url = url or new_database()
    # The command line acts on the store the nodes share, as an operator's would with the nodes' configuration.
    monkeypatch.setenv("HIKYAKU_STORAGE_URL", url)
    nodes = []
    for name, host in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        node = make_server(start=False)
        node.config["storage"] = {"url": url}
        node.config["cluster"] = {"nodeName": name, "heartbeatSeconds": 1}
        node.config["smtp"]["listen"] = [f"{host}:0"]
        node.config["smtp"]["tlsListen"] = [f"{host}:0"]
        node.config["api"] = {"listen": f"{host}:0"}
        # Delivery on, so that the scheduler decides each recipient; DNS goes nowhere, so mail that is not
        # suppressed waits for a retry.
        node.config["delivery"] = delivery or {"enabled": True, "minimumBackoffSeconds": 60, "maximumBackoffSeconds": 60}
        node.config["dns"] = {"servers": [f"127.0.0.1:{dns_port}"], "timeoutMilliseconds": 500}
        node.config.update(extra or {})
        node.host = host
        nodes.append(node)
    a, b = nodes
    a.start()
    # Every node seals and opens secrets with the same key: the first node's, copied before the others start.
    os.makedirs(b.data_dir, exist_ok=True)
    shutil.copy(os.path.join(a.data_dir, "secrets.key"), os.path.join(b.data_dir, "secrets.key"))
    os.chmod(os.path.join(b.data_dir, "secrets.key"), 0o600)
    b.start()
    return a, b


@pytest.fixture
def cluster(make_server, monkeypatch):
    return start_cluster(make_server, monkeypatch)


def test_two_nodes_act_as_one_service(cluster):
    a, b = cluster
    user, password = a.create_account("acme", ["acme.test"])
    token = a.api_key("acme", "admin")[0]

    # An account made through one node's command line works on the other: SMTP AUTH and the API.
    with smtplib.SMTP(b.host, b.smtp_port, timeout=20) as smtp:
        smtp.starttls()
        smtp.login(user, password)
        smtp.sendmail("news@acme.test", ["first@example.net"], b"Subject: via b\r\n\r\nhello\r\n")
    assert call(b, "GET", "/v1/account", token)[0] == 200

    # A suppression added through node A stops delivery from node B within 5 s.
    assert call(a, "POST", "/v1/suppressions", token, {"address": "gone@example.net", "reason": "manual"})[0] in (200, 201)
    time.sleep(5.5)
    status, sent = call(b, "POST", "/v1/messages", token, {"from": "news@acme.test", "to": "gone@example.net", "subject": "s", "text": "t"})
    assert status == 202, sent
    state = wait_for(lambda: (lambda s: s if s != "queued" else None)(
        call(b, "GET", f"/v1/messages/{sent['id']}", token)[1]["recipients"][0]["state"]), timeout=30, what="node B's decision")
    # The scheduler drops a suppressed recipient before any attempt.
    assert state == "suppressed", state

    # A key revoked on node A is refused on node B within 5 s (a node keeps a verified key for 4 s).
    other, key_id, _ = a.api_key("acme", "read")
    assert call(b, "GET", "/v1/account", other)[0] == 200
    a.cli("apikey", "revoke", key_id)
    revoked = time.time()
    wait_for(lambda: call(b, "GET", "/v1/account", other)[0] == 401, timeout=10, what="node B to refuse the revoked key")
    assert time.time() - revoked < 5

    # The account's daily quota of 100 holds across both nodes (each reads the other's flushed counts every 5 s).
    a.cli("account", "set-quota", "acme", "--daily", "100")
    time.sleep(5.5)
    message = {"from": "news@acme.test", "subject": "q", "text": "t"}
    # Counted already: the SMTP message and the suppressed one, both through B.
    for index in range(58):
        assert call(a, "POST", "/v1/messages", token, dict(message, to=f"qa{index}@example.net"))[0] == 202
    time.sleep(7)
    statuses = [call(b, "POST", "/v1/messages", token, dict(message, to=f"qb{index}@example.net"))[0] for index in range(45)]
    # The tolerance is what the nodes admit in the seconds before they hear of each other; both have heard here.
    assert statuses == [202] * 40 + [429] * 5, statuses

    # Each node registers itself; either one's command line lists both.
    listed = wait_for(lambda: (lambda items: items if len(items) == 2 else None)(a.cli_json("cluster", "status")), what="both nodes")
    assert sorted(item["node"]["name"] for item in listed) == ["node-a", "node-b"]
    assert all(item["alive"] for item in listed)


def test_two_nodes_deliver_within_one_site_limit_and_show_each_others_events(make_server, monkeypatch, tmp_path):
    shaping = tmp_path / "shaping.json"
    shaping.write_text(json.dumps({"sites": [{"name": "limited", "domains": ["limit.test"], "maxConnections": 2,
                                              "maxMessagesPerConnection": 5}]}))
    # Slow replies to "." keep each connection busy, so that both nodes want more than the site allows.
    sink = ScriptedSink("127.0.0.11", data_delay=0.05)
    try:
        with dnsmasq("--mx-host=limit.test,mx.limit.test,10", "--host-record=mx.limit.test,127.0.0.11") as dns_port:
            webhooks = {"allowNonPublicAddresses": True, "allowPlainHttp": True, "batchAgeMilliseconds": 100}
            a, b = start_cluster(make_server, monkeypatch, dns_port=dns_port, extra={"webhooks": webhooks},
                                 delivery={"enabled": True, "allowNonPublicAddresses": True, "shapingFile": str(shaping)})
            a.create_account("acme", ["acme.test"])
            token = a.api_key("acme", "admin")[0]
            # A webhook endpoint made through node A hears of both nodes' events.
            receiver = Receiver()
            status, hook = call(a, "POST", "/v1/webhooks", token, {"url": receiver.url, "format": "native"})
            assert status == 201, hook
            count = 30
            sent = {}
            for node in (a, b):
                for n in range(count):
                    status, body = call(node, "POST", "/v1/messages", token,
                                        {"from": "news@acme.test", "to": f"{node.host}-{n}@limit.test", "subject": f"n{n}", "text": "t"})
                    assert status == 202, body
                    sent[body["id"]] = node
            # Mail submitted to both nodes is delivered through the MX, each message once.
            wait_for(lambda: len(sink.messages) >= 2 * count, timeout=90, what=f"{2 * count} deliveries")
            time.sleep(0.5)
            assert len(sink.messages) == 2 * count
            assert sink.max_concurrent <= 2, f"{sink.max_concurrent} connections at once to a site limited to 2 across the nodes"

            # Each node finds the other's events: the API, and the command line.
            def delivered(node):
                status, body = call(node, "GET", "/v1/events?status=delivered&limit=1000", token)
                assert status == 200, body
                return {event["message_id"] for event in body["events"]}
            for node in (a, b):
                found = wait_for(lambda: (lambda ids: ids if ids == set(sent) else None)(delivered(node)), timeout=15,
                                 what=f"every node's deliveries through {node.host}")
                assert found == set(sent)
            other_id = next(id for id, node in sent.items() if node is b)
            events = a.cli_json("log", "--message", other_id)
            assert [event["type"] for event in events] == ["delivered", "accepted"], events
            # Node B's message looked up through node A: what the shared log knows of it.
            status, message = call(a, "GET", f"/v1/messages/{other_id}", token)
            assert status == 200 and "node" in message, message
            assert message["from"] == "news@acme.test" and [r["state"] for r in message["recipients"]] == ["delivered"], message
            assert message["recipients"][0]["attempts"] == 1 and [e["type"] for e in message["events"]] == ["accepted", "delivered"]
            assert call(a, "GET", "/v1/messages/01m95m1ff823r26r3z74", token)[0] == 404

            # Each node sends its own events to the endpoint from its own position: every one arrives, once.
            hooked = wait_for(lambda: (lambda events: events if len({(e["message_id"], e["type"]) for e in events}) >= 2 * len(sent)
                                       else None)(native_events(receiver, hook["secret"])), timeout=30, what="every event by webhook")
            time.sleep(1)
            hooked = native_events(receiver, hook["secret"])
            pairs = [(e["message_id"], e["type"]) for e in hooked]
            assert len(pairs) == len(set(pairs)) == 2 * len(sent), "accepted and delivered, once each"
            receiver.close()
    finally:
        sink.stop()


def subjects(sink):
    """The subjects of the messages the sink received (each a single word here)."""
    found = (re.search(rb"^Subject: (\S+)\r$", data, re.M) for _, _, data in sink.messages)
    return {match.group(1).decode() for match in found if match}


def send_authenticated(node, user, password, recipient, subject):
    with smtplib.SMTP(node.host, node.smtp_port, timeout=30) as smtp:
        smtp.starttls()
        smtp.login(user, password)
        smtp.sendmail("news@acme.test", [recipient], f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def test_a_node_killed_mid_load_loses_nothing_and_the_other_keeps_serving(make_server, monkeypatch):
    sink = ScriptedSink("127.0.0.12", data_delay=0.02)
    try:
        with dnsmasq("--mx-host=kill.test,mx.kill.test,10", "--host-record=mx.kill.test,127.0.0.12") as dns_port:
            a, b = start_cluster(make_server, monkeypatch, dns_port=dns_port,
                                 delivery={"enabled": True, "allowNonPublicAddresses": True,
                                           "minimumBackoffSeconds": 1, "maximumBackoffSeconds": 1})
            user, password = a.create_account("acme", ["acme.test"])
            # Node A takes mail in a steady stream; it is killed with SIGKILL in the middle of it.
            accepted = []
            stop = threading.Event()

            def load():
                n = 0
                while not stop.is_set():
                    try:
                        send_authenticated(a, user, password, f"a{n}@kill.test", f"a{n}")
                        accepted.append(f"a{n}")
                    except (OSError, smtplib.SMTPException):
                        return
                    n += 1
            loader = threading.Thread(target=load)
            loader.start()
            wait_for(lambda: len(accepted) >= 30, timeout=60, what="node A under load")
            a.kill()
            stop.set()
            loader.join(timeout=60)
            # Node B serves on: signs in, takes and delivers mail.
            for n in range(10):
                send_authenticated(b, user, password, f"b{n}@kill.test", f"b{n}")
            delivered = lambda: subjects(sink)
            wait_for(lambda: all(f"b{n}" in delivered() for n in range(10)), timeout=60, what="node B's deliveries")
            # Node A restarted on its data directory: its spool drains, and every message it accepted arrives.
            a.start()
            wait_for(lambda: set(accepted) <= delivered(), timeout=120,
                     what=f"node A's {len(accepted)} accepted messages after its restart")
            wait_for(lambda: a.metric("hikyaku_queue_recipients", state="queued") == 0, timeout=30, what="node A's queue to empty")
    finally:
        sink.stop()


@pytest.fixture
def private_postgres():
    """A PostgreSQL cluster of this test's own, to stop and start again."""
    directory = tempfile.mkdtemp(prefix="hikyaku-pg-")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "postgres.sh")
    url = subprocess.run(["bash", script, "start", directory], check=True, capture_output=True, text=True,
                         timeout=120).stdout.strip()

    def control(command):
        subprocess.run(["bash", script, command, directory], check=True, capture_output=True, timeout=120)
    try:
        yield url, control
    finally:
        control("stop")
        shutil.rmtree(directory, ignore_errors=True)


def test_thirty_seconds_without_postgres_lose_no_mail_and_no_event(make_server, monkeypatch, private_postgres):
    url, control = private_postgres
    refuse = lambda rcpt: "550 5.1.1 The email account that you tried to reach does not exist" if rcpt.startswith("gone") else None
    sink = ScriptedSink("127.0.0.13", refuse=refuse)
    try:
        with dnsmasq("--mx-host=out.test,mx.out.test,10", "--host-record=mx.out.test,127.0.0.13") as dns_port:
            a, b = start_cluster(make_server, monkeypatch, dns_port=dns_port, url=url,
                                 delivery={"enabled": True, "allowNonPublicAddresses": True})
            user, password = a.create_account("acme", ["acme.test"])
            token = a.api_key("acme", "admin")[0]
            # Each node has verified the account's credentials once before the outage.
            send_authenticated(a, user, password, "before-a@out.test", "before-a")
            send_authenticated(b, user, password, "before-b@out.test", "before-b")
            wait_for(lambda: len(sink.messages) == 2, what="the first deliveries")

            control("stop")
            started = time.time()
            sent = ["before-a", "before-b"]
            n = 0
            while time.time() - started < 30:
                for node in (a, b):
                    # A known account signs in from the credentials it used last, and its mail is taken.
                    send_authenticated(node, user, password, f"during{n}@out.test", f"during{n}")
                    sent.append(f"during{n}")
                    n += 1
                time.sleep(0.5)
            # Delivery goes on meanwhile.
            delivered = lambda: subjects(sink)
            wait_for(lambda: set(sent) <= delivered(), timeout=30, what="deliveries during the outage")
            # A bounce from a bad address during the outage: the suppression waits for the store.
            send_authenticated(a, user, password, "gone@out.test", "gone")
            # Unknown credentials cannot be checked: try again later, not "wrong password".
            with smtplib.SMTP(a.host, a.smtp_port, timeout=30) as smtp:
                smtp.starttls()
                with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                    smtp.login("nobody", "nothing")
                assert refused.value.smtp_code == 454, refused.value
            # The API needs the store for its keys: a 503 with a reason, never a 401.
            status, body = call(a, "GET", "/v1/account", token)
            assert status == 503 and body["error"]["code"] == "store_unavailable", body

            control("resume")
            # Everything catches up: the events of both nodes in the shared log, the suppression, the usage.
            def delivered_events(node):
                status, body = call(node, "GET", "/v1/events?status=delivered&limit=1000", token)
                return {event["recipient"].split("@")[0] for event in body["events"]} if status == 200 else set()
            wait_for(lambda: delivered_events(b) == set(sent), timeout=30, what="every delivery in the shared log")
            wait_for(lambda: call(a, "GET", "/v1/events?status=bounced", token)[1]["events"], timeout=30, what="the bounce")
            wait_for(lambda: call(b, "GET", "/v1/suppressions/gone@out.test", token)[0] == 200, timeout=30,
                     what="the suppression made during the outage")
            usage = wait_for(lambda: (lambda days: days if days and days[0]["messages"] == len(sent) + 1 else None)(
                call(b, "GET", "/v1/account/usage", token)[1]["usage"]), timeout=30, what="the usage counted on both nodes")
            assert usage[0]["recipients"] == len(sent) + 1
    finally:
        sink.stop()


def fetch(url, method="GET", data=None):
    request = urllib.request.Request(url, data=data, method=method, headers={
        "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_what_the_other_node_hears_about_a_message_reaches_the_node_that_sent_it(make_server, monkeypatch):
    """Behind a load balancer an open, an unsubscribe or a bounce report about node A's message arrives at
    node B as often as at A: B posts it to the cluster's inbox, A applies it as its own."""
    sink = ScriptedSink("127.0.0.14")
    try:
        with dnsmasq("--mx-host=fb.test,mx.fb.test,10", "--host-record=mx.fb.test,127.0.0.14") as dns_port:
            a, b = start_cluster(make_server, monkeypatch, dns_port=dns_port,
                                 extra={"bounce": {"domain": "bounce.test"}, "tracking": {"machineWindowSeconds": 0}},
                                 delivery={"enabled": True, "allowNonPublicAddresses": True})
            a.create_account("acme", ["acme.test"])
            token = a.api_key("acme", "admin")[0]
            news = {"from": "news@acme.test", "subject": "news", "html": "<html><body><p>Hi</p></body></html>", "marketing": True,
                    "tracking": {"opens": True}}
            for to in ("reader@fb.test", "gone@fb.test"):
                status, body = call(a, "POST", "/v1/messages", token, dict(news, to=to))
                assert status == 202, body
            wait_for(lambda: len(sink.messages) == 2, what="both deliveries")
            received = {rcpts[0]: (sender, email.message_from_bytes(data, policy=email.policy.default))
                        for sender, rcpts, data in sink.messages}
            node_b = f"http://{b.host}:{b.api_port}"
            on_b = lambda url: node_b + url[url.index("/", url.index("//") + 2):]

            # The reader opens the mail; the image is fetched from node B.
            _, message = received["reader@fb.test"]
            pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', message.get_body(("html",)).get_content()).group(1)
            assert fetch(on_b(pixel))[0] == 200
            # and unsubscribes with one click, also at node B.
            url = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])[0]
            status, page = fetch(on_b(url), "POST", b"List-Unsubscribe=One-Click")
            assert status == 200, page
            # A bounce report for the other message comes to node B's port 25.
            verp, _ = received["gone@fb.test"]
            with smtplib.SMTP(b.host, b.smtp_port, timeout=30) as smtp:
                smtp.sendmail("", [verp], DSN.format(verp=verp, recipient="gone@fb.test").replace("\n", "\r\n").encode())

            # Node A applies all three: the events in the log (found through either node), the suppressions.
            def types(node, recipient):
                status, body = call(node, "GET", f"/v1/events?recipient={recipient}", token)
                return {event["type"] for event in body["events"]} if status == 200 else set()
            wait_for(lambda: {"opened", "unsubscribed"} <= types(b, "reader@fb.test"), timeout=30, what="the open and the unsubscribe")
            wait_for(lambda: "bounced" in types(a, "gone@fb.test"), timeout=30, what="the bounce")
            status, suppression = call(b, "GET", "/v1/suppressions/reader@fb.test", token)
            assert status == 200 and suppression["reason"] == "unsubscribe", suppression
            status, suppression = call(a, "GET", "/v1/suppressions/gone@fb.test", token)
            assert status == 200 and suppression["reason"] == "bounce", suppression
    finally:
        sink.stop()



def test_a_campaign_cancelled_on_one_node_is_withdrawn_from_both(make_server, monkeypatch):
    a, b = start_cluster(make_server, monkeypatch)
    a.create_account("acme", ["acme.test"])
    token = a.api_key("acme", "admin")[0]
    # A slow campaign (each node sends its share of 100 a second), so that it is still sending when cancelled.
    a.cli("account", "set-quota", "acme", "--rate", "100")
    lines = ["email"] + [f"c{i}@example.net" for i in range(3000)]
    response = requests.post(f"http://{a.host}:{a.api_port}/v1/contacts/imports", data="\r\n".join(lines).encode(), timeout=120,
                             headers={"Authorization": "Bearer " + token, "Content-Type": "text/csv"})
    assert response.status_code == 202, response.text
    started = response.json()
    wait_for(lambda: call(a, "GET", f"/v1/contacts/imports/{started['id']}", token)[1]["state"] == "done", timeout=120,
             what="the import")
    status, campaign = call(a, "POST", "/v1/campaigns", token, {"name": "news", "from": "news@acme.test", "subject": "s", "text": "t"})
    assert status == 201, campaign
    queued = lambda node: len(node.cli_json("queue", "list"))
    # Both nodes' runners take batches of it.
    wait_for(lambda: queued(a) > 0 and queued(b) > 0, timeout=60, what="both nodes sending the campaign")
    status, cancelled = call(a, "POST", f"/v1/campaigns/{campaign['id']}/cancel", token)
    assert status == 200 and cancelled["state"] == "cancelled", cancelled
    # Node A withdrew its own at once; node B withdraws its own within 5 s.
    assert queued(a) == 0
    wait_for(lambda: queued(b) == 0, timeout=15, what="node B to withdraw the campaign's mail")
    status, body = call(b, "GET", "/v1/events?status=cancelled&limit=1000", token)
    assert status == 200 and body["events"], body

"""Two nodes sharing one PostgreSQL store (storage.url): what one node changes, the other acts on.

scripts/test.sh starts a private PostgreSQL cluster and names it in HIKYAKU_TEST_POSTGRES_URL; each test
makes a database of its own there. The nodes run on 127.0.0.2 and 127.0.0.3, each with its own data
directory (spool, queue index) and the same secrets.key, as docs/storage.md asks."""

import json
import os
import shutil
import smtplib
import subprocess
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from conftest import dnsmasq
from sink import ScriptedSink

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


def start_cluster(make_server, monkeypatch, delivery=None, dns_port=9):
    url = new_database()
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
            a, b = start_cluster(make_server, monkeypatch, dns_port=dns_port,
                                 delivery={"enabled": True, "allowNonPublicAddresses": True, "shapingFile": str(shaping)})
            a.create_account("acme", ["acme.test"])
            token = a.api_key("acme", "admin")[0]
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
    finally:
        sink.stop()

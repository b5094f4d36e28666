"""Delivery of a queued message (`hikyaku queue deliver`): dnsmasq resolves the
MX to 127.0.0.2, where an aiosmtpd server plays the recipient's mail server."""
import json
import os
import smtplib
import subprocess
import tempfile
import time

import pytest
from aiosmtpd.controller import Controller

from conftest import BINARY
from test_dns import free_port


class RecordingMX:
    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad@"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.startswith("later@"):
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 accepted"


@pytest.fixture(scope="module")
def mx():
    handler = RecordingMX()
    controller = Controller(handler, hostname="127.0.0.2", port=25)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def dns():
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen([
            "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else "dnsmasq",
            "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--local-ttl=60",
            f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--local=/test/",
            f"--pid-file={directory}/pid", "--user=root",
            "--mx-host=example.test,mx.example.test,10", "--host-record=mx.example.test,127.0.0.2",
            "--mx-host=nullmx.test,.,0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()
        yield port
        proc.terminate()
        proc.wait(timeout=10)


def deliver(server, message_id, dns_port, allow_private=True):
    env = dict(os.environ, HIKYAKU_DNS_SERVERS=f"127.0.0.1:{dns_port}",
               HIKYAKU_DELIVERY_ALLOW_NON_PUBLIC_ADDRESSES="true" if allow_private else "false",
               HIKYAKU_DNS_TIMEOUT_MILLISECONDS="1000")
    result = subprocess.run([BINARY, "queue", "deliver", message_id, "--json", "--data-dir", server.data_dir],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return {r["recipient"]: r for r in json.loads(result.stdout)}


def queue_one(server, recipients, body=b"Subject: hello\r\n\r\nline\r\n.dot line\r\n..two dots\r\n"):
    before = {m["id"] for m in server.queue()}
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.sendmail("app@sender.example", recipients, body)
    (new,) = [m["id"] for m in server.queue() if m["id"] not in before]
    return new


def test_delivered_byte_exact_with_per_recipient_outcomes(trusted_server, mx, dns):
    message_id = queue_one(trusted_server, ["good1@example.test", "bad@example.test", "good2@example.test", "later@example.test"])
    results = deliver(trusted_server, message_id, dns)
    assert results["good1@example.test"]["state"] == "delivered"
    assert results["good2@example.test"]["state"] == "delivered"
    assert results["bad@example.test"]["state"] == "bounced" and "5.1.1" in results["bad@example.test"]["reply"]
    assert results["later@example.test"]["state"] == "deferred" and "450" in results["later@example.test"]["reply"]
    sender, rcpts, content = mx.messages[-1]
    assert sender == "app@sender.example" and rcpts == ["good1@example.test", "good2@example.test"]
    assert content == trusted_server.raw_message(message_id), "the MX gets exactly the stored bytes"
    assert content.endswith(b"line\r\n.dot line\r\n..two dots\r\n") and content.startswith(b"Received: from ")
    details = trusted_server.cli_json("queue", "show", message_id)
    states = {r["address"]: (r["state"], r["attempts"]) for r in details["recipients"]}
    assert states == {"good1@example.test": ("delivered", 1), "bad@example.test": ("bounced", 1),
                      "good2@example.test": ("delivered", 1), "later@example.test": ("deferred", 1)}
    # A second run only retries the deferred recipient.
    again = deliver(trusted_server, message_id, dns)
    assert list(again) == ["later@example.test"]


def test_null_mx_and_nxdomain_bounce_without_connecting(trusted_server, mx, dns):
    count = len(mx.messages)
    message_id = queue_one(trusted_server, ["a@nullmx.test", "b@nothing.test"])
    results = deliver(trusted_server, message_id, dns)
    assert results["a@nullmx.test"]["state"] == "bounced" and "5.1.10" in results["a@nullmx.test"]["reply"]
    assert results["b@nothing.test"]["state"] == "bounced" and "5.1.2" in results["b@nothing.test"]["reply"]
    assert len(mx.messages) == count


def test_private_mx_address_is_refused_by_default(trusted_server, mx, dns):
    message_id = queue_one(trusted_server, ["good1@example.test"])
    results = deliver(trusted_server, message_id, dns, allow_private=False)
    assert results["good1@example.test"]["state"] == "bounced"
    assert "5.4.4" in results["good1@example.test"]["reply"] and "non-public" in results["good1@example.test"]["reply"]

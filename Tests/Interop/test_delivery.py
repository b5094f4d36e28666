"""Delivery of a queued message (`hikyaku queue deliver`): dnsmasq resolves the
MX to 127.0.0.2, where an aiosmtpd server plays the recipient's mail server."""
import json
import os
import smtplib
import subprocess
import time

import pytest
from aiosmtpd.controller import Controller

from conftest import BINARY, dnsmasq, free_udp_port


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
    with dnsmasq("--mx-host=example.test,mx.example.test,10", "--host-record=mx.example.test,127.0.0.2",
                 "--mx-host=nullmx.test,.,0") as port:
        yield port


def deliver(server, message_id, dns_port, allow_private=True):
    return deliver_with(server, message_id, dns_port,
                        HIKYAKU_DELIVERY_ALLOW_NON_PUBLIC_ADDRESSES="true" if allow_private else "false")


def queue_one(server, recipients, body=b"Subject: hello\r\n\r\nline\r\n.dot line\r\n..two dots\r\n"):
    before = {m["id"] for m in server.cli_json("queue", "list", "--all")}
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.sendmail("app@sender.example", recipients, body)
    # A delivering server may have finished it already: list finished ones too.
    (new,) = [m["id"] for m in server.cli_json("queue", "list", "--all") if m["id"] not in before]
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
    # The delivery log has every attempt, with the connection and the classification.
    (bounced,) = trusted_server.cli_json("log", "--recipient", "BAD@example.test", "--status", "bounced")
    assert bounced["messageID"] == message_id and bounced["attempt"] == 1
    assert (bounced["replyCode"], bounced["enhancedCode"]) == (550, "5.1.1") and "User unknown" in bounced["replyText"]
    assert bounced["category"] == "invalid_recipient" and bounced["hard"] is True
    assert bounced["mxHost"] == "mx.example.test" and bounced["remoteIP"] == "127.0.0.2" and bounced["sourceIP"] == "127.0.0.1"
    assert bounced["durationMilliseconds"] >= 0 and bounced["site"] == "mx:mx.example.test"
    later = trusted_server.cli_json("log", "--recipient", "later@example.test", "--message", message_id)
    assert [(e["type"], e.get("attempt")) for e in later] == [("deferred", 2), ("deferred", 1), ("accepted", None)]
    assert later[0]["category"] == "rate_limited" and later[0]["hard"] is False  # 4.2.1 "try again later"
    assert trusted_server.cli_json("log", "--message", message_id, "--category", "invalid_recipient")[0]["recipient"] == "bad@example.test"
    assert trusted_server.cli_json("log", "--message", message_id, "--since", "1h", "--status", "delivered", "--limit", "1")
    assert trusted_server.cli_json("log", "--message", message_id, "--until", "2000-01-01T00:00:00Z") == []
    text = trusted_server.cli("log", "--message", message_id, "--status", "bounced").stdout
    assert "category=invalid_recipient/hard" in text and "mx=mx.example.test[127.0.0.2]" in text
    assert trusted_server.cli("log", "--status", "nonsense", check=False).returncode != 0
    assert trusted_server.cli("log", "--since", "yesterday", check=False).returncode != 0


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


class TLSRecordingMX(RecordingMX):
    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                              session.ssl is not None))
        return "250 2.0.0 accepted"


def start_mx(handler, host, certificate_dir=None):
    import ssl
    context = None
    if certificate_dir:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(certificate_dir, "certificate.pem"), os.path.join(certificate_dir, "private-key.pem"))
    controller = Controller(handler, hostname=host, port=25, tls_context=context, require_starttls=False)
    controller.start()
    return controller


@pytest.fixture(scope="module")
def tls_dns():
    with dnsmasq("--mx-host=tls.test,mx.tls.test,10", "--host-record=mx.tls.test,127.0.0.3",
                 "--mx-host=plain.test,mx.plain.test,10", "--host-record=mx.plain.test,127.0.0.4") as port:
        yield port


def test_starttls_opportunistic_and_required(trusted_server, tls_dns):
    tls_mx, plain_mx = TLSRecordingMX(), TLSRecordingMX()
    # The server's own self-signed pair serves as the MX certificate.
    with_tls = start_mx(tls_mx, "127.0.0.3", os.path.join(trusted_server.data_dir, "tls"))
    without_tls = start_mx(plain_mx, "127.0.0.4")
    try:
        message_id = queue_one(trusted_server, ["a@tls.test", "b@plain.test"])
        results = deliver(trusted_server, message_id, tls_dns)
        assert results["a@tls.test"]["state"] == "delivered" and tls_mx.messages[-1][3] is True, "STARTTLS used when offered"
        assert results["b@plain.test"]["state"] == "delivered" and plain_mx.messages[-1][3] is False, "plaintext when not offered"
        logged = {e["recipient"]: e for e in trusted_server.cli_json("log", "--message", message_id, "--status", "delivered")}
        assert logged["a@tls.test"]["tlsVersion"].startswith("tlsv1"), logged
        assert "tlsVersion" not in logged["b@plain.test"] or logged["b@plain.test"]["tlsVersion"] is None

        required_id = queue_one(trusted_server, ["a@tls.test", "b@plain.test"])
        env_results = deliver_with(trusted_server, required_id, tls_dns, HIKYAKU_DELIVERY_TLS_POLICY="required")
        assert env_results["a@tls.test"]["state"] == "delivered"
        assert env_results["b@plain.test"]["state"] == "deferred" and "4.7.10" in env_results["b@plain.test"]["reply"]

        verified_id = queue_one(trusted_server, ["a@tls.test"])
        verified = deliver_with(trusted_server, verified_id, tls_dns, HIKYAKU_DELIVERY_TLS_POLICY="required-verified")
        assert verified["a@tls.test"]["state"] == "deferred", "a self-signed certificate does not verify"
        assert "4.7.5" in verified["a@tls.test"]["reply"] and "TLS" in verified["a@tls.test"]["reply"]
    finally:
        with_tls.stop()
        without_tls.stop()


def test_dns_timeout_defers(trusted_server):
    message_id = queue_one(trusted_server, ["a@example.test"])
    results = deliver(trusted_server, message_id, free_udp_port())  # no DNS server there
    assert results["a@example.test"]["state"] == "deferred" and "4.4.3" in results["a@example.test"]["reply"]


def deliver_with(server, message_id, dns_port, **extra):
    """Runs `hikyaku queue deliver` against the test DNS server; returns outcomes by recipient."""
    env = dict(os.environ, HIKYAKU_DNS_SERVERS=f"127.0.0.1:{dns_port}", HIKYAKU_DELIVERY_ALLOW_NON_PUBLIC_ADDRESSES="true",
               HIKYAKU_DNS_TIMEOUT_MILLISECONDS="1000")
    env.update(extra)
    result = subprocess.run([BINARY, "queue", "deliver", message_id, "--json", "--data-dir", server.data_dir],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return {r["recipient"]: r for r in json.loads(result.stdout)}


class FlakyMX(RecordingMX):
    """Defers "flaky@" twice, then accepts; always defers "never@"."""

    def __init__(self):
        super().__init__()
        self.tries = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.tries[address] = self.tries.get(address, 0) + 1
        if address.startswith("flaky@") and self.tries[address] <= 2:
            return "451 4.3.0 Temporary local problem"
        if address.startswith("never@"):
            return "450 4.2.1 Mailbox busy"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def delivering_server(make_server, dns_port, **delivery):
    server = make_server(start=False, trustedNetworks=["127.0.0.0/8"])
    server.config["dns"] = {"servers": [f"127.0.0.1:{dns_port}"], "timeoutMilliseconds": 1000}
    server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True, **delivery}
    return server.start()


def wait_for_states(server, message_id, predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        recipients = {r["address"]: r for r in server.cli_json("queue", "show", message_id)["recipients"]}
        if predicate(recipients):
            return recipients
        time.sleep(0.3)
    raise AssertionError(f"states not reached: {recipients}")


@pytest.fixture(scope="module")
def flaky_dns():
    with dnsmasq("--mx-host=flaky.test,mx.flaky.test,10", "--host-record=mx.flaky.test,127.0.0.5") as port:
        yield port


@pytest.fixture
def flaky_mx():
    """A FlakyMX on 127.0.0.5:25 (flaky.test's MX), fresh for each test."""
    mx = FlakyMX()
    controller = Controller(mx, hostname="127.0.0.5", port=25)
    controller.start()
    yield mx
    controller.stop()


def wait_for_dsns(mx, timeout=30):
    """Messages from the null sender at `mx`, once at least one has come."""
    deadline = time.time() + timeout
    while time.time() < deadline and not any(m[0] in ("", "<>") for m in mx.messages):
        time.sleep(0.2)
    return [m for m in mx.messages if m[0] in ("", "<>")]


def test_server_delivers_retries_on_schedule_and_expires(make_server, flaky_dns, flaky_mx):
    server = delivering_server(make_server, flaky_dns, minimumBackoffSeconds=1, maximumBackoffSeconds=2,
                               queueLifetimeSeconds=8)
    message_id = queue_one(server, ["ok@flaky.test", "flaky@flaky.test", "never@flaky.test"])
    states = wait_for_states(server, message_id, lambda r: r["ok@flaky.test"]["state"] == "delivered"
                             and r["flaky@flaky.test"]["state"] == "delivered" and r["never@flaky.test"]["state"] == "expired")
    assert states["ok@flaky.test"]["attempts"] == 1
    assert states["flaky@flaky.test"]["attempts"] == 3, "deferred twice, then delivered"
    assert "expired" in states["never@flaky.test"]["lastReply"] and "450" in states["never@flaky.test"]["lastReply"]
    delivered = [m for m in flaky_mx.messages if "flaky@flaky.test" in m[1]]
    assert len(delivered) == 1 and delivered[0][2] == server.raw_message(message_id)
    server.stop()
    assert server.proc.returncode == 0


def test_queue_retry_rearms_deferred_mail(make_server, flaky_dns, flaky_mx):
    # A long backoff: only `queue retry` brings the second attempt soon.
    server = delivering_server(make_server, flaky_dns, minimumBackoffSeconds=3600)
    message_id = queue_one(server, ["flaky@flaky.test"])
    wait_for_states(server, message_id, lambda r: r["flaky@flaky.test"]["attempts"] == 1)
    assert server.metric("hikyaku_queue_recipients", state="deferred") == 1
    assert server.metric("hikyaku_queue_messages") == 1
    assert server.cli("queue", "retry").stdout.strip() == "re-armed 1"
    wait_for_states(server, message_id, lambda r: r["flaky@flaky.test"]["attempts"] == 2)


def test_bounce_sends_a_dsn_to_the_sender_and_none_for_the_null_sender(make_server, flaky_dns, flaky_mx):
    import email
    server = delivering_server(make_server, flaky_dns)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.sendmail("owner@flaky.test", ["bad@flaky.test", "ok@flaky.test"], b"Subject: report me\r\n\r\nbody\r\n")
    dsns = wait_for_dsns(flaky_mx)
    assert len(dsns) == 1, flaky_mx.messages
    _, rcpts, content = dsns[0][:3]
    assert rcpts == ["owner@flaky.test"]
    report = email.message_from_bytes(content)
    assert report.get_content_type() == "multipart/report" and report.get_param("report-type") == "delivery-status"
    parts = {part.get_content_type(): part for part in report.walk()}
    status = parts["message/delivery-status"].as_string()
    assert "Final-Recipient: rfc822; bad@flaky.test" in status and "Status: 5.1.1" in status
    assert "ok@flaky.test" not in status
    assert "Subject: report me" in parts["text/rfc822-headers"].as_string()

    # A bounce of mail from the null sender produces no DSN.
    count = len(flaky_mx.messages)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.sendmail("", ["bad@flaky.test"], b"Subject: a bounce\r\n\r\nbody\r\n")
    queued = [m for m in server.cli_json("queue", "list", "--all") if m["sender"] == ""]
    for message in queued:
        wait_for_states(server, message["id"], lambda r: all(x["state"] != "queued" and x["state"] != "deferred" for x in r.values()))
    time.sleep(1)
    assert [m for m in flaky_mx.messages[count:] if m[0] in ("", "<>")] == []


def test_delayed_dsn_once_after_the_warning_time(make_server, flaky_dns, flaky_mx):
    import email
    server = delivering_server(make_server, flaky_dns, minimumBackoffSeconds=1, maximumBackoffSeconds=1,
                               delayWarningSeconds=2)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.sendmail("owner@flaky.test", ["never@flaky.test"], b"Subject: slow one\r\n\r\nbody\r\n")
    wait_for_dsns(flaky_mx)
    time.sleep(3)  # more deferrals: still one warning
    dsns = [m for m in flaky_mx.messages if m[0] in ("", "<>")]
    assert len(dsns) == 1, dsns
    report = email.message_from_bytes(dsns[0][2])
    assert report["Subject"] == "Delayed Mail (still being retried)"
    status = {part.get_content_type(): part for part in report.walk()}["message/delivery-status"].as_string()
    assert "Final-Recipient: rfc822; never@flaky.test" in status and "Action: delayed" in status
    assert "Status: 4.2.1" in status and "Will-Retry-Until:" in status

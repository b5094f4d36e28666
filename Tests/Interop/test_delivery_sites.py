"""The delivering server against scripted MX hosts: a connection dropped after
".", a site's connection limit, connection reuse, and SIGKILL in the middle
of a large delivery."""
import json
import smtplib
import time

import pytest

from conftest import dnsmasq
from sink import ScriptedSink
from test_delivery import delivering_server, wait_for_states


@pytest.fixture(scope="module")
def dns():
    with dnsmasq("--mx-host=drop.test,mx.drop.test,10", "--host-record=mx.drop.test,127.0.0.6",
                 "--mx-host=limit.test,mx.limit.test,10", "--host-record=mx.limit.test,127.0.0.7",
                 "--mx-host=kill.test,mx.kill.test,10", "--host-record=mx.kill.test,127.0.0.8",
                 "--mx-host=pool.test,mx.pool.test,10", "--host-record=mx.pool.test,127.0.0.9") as port:
        yield port


def wait_until(predicate, timeout=60, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_connection_dropped_after_dot_is_retried_and_the_duplicate_counted(make_server, dns):
    sink = ScriptedSink("127.0.0.6")
    sink.drop_after_dot(1)
    try:
        server = delivering_server(make_server, dns, minimumBackoffSeconds=1, maximumBackoffSeconds=1)
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            client.sendmail("app@sender.example", ["user@drop.test"], b"Subject: once\r\n\r\nbody\r\n")
        assert wait_until(lambda: server.cli_json("log", "--status", "delivered") != [])
        (delivered,) = server.cli_json("log", "--status", "delivered")
        (deferred,) = server.cli_json("log", "--status", "deferred")
        # The first attempt did reach the sink, but no reply came: retried, not bounced.
        assert deferred["attempt"] == 1 and deferred["replyCode"] == 451 and deferred["enhancedCode"] == "4.4.2"
        assert deferred["category"] == "connection_failure"
        assert server.metric("hikyaku_delivery_attempts_total", outcome="deferred", category="connection_failure") == 1
        assert delivered["attempt"] == 2
        bodies = [data for _, rcpts, data in sink.messages if rcpts == ["user@drop.test"]]
        assert len(bodies) == 2 and bodies[0] == bodies[1], "delivered at least once; the duplicate is visible at the sink"
    finally:
        sink.stop()


def test_site_connection_limit_is_never_exceeded_and_connections_are_reused(make_server, dns, tmp_path):
    shaping = tmp_path / "shaping.json"
    shaping.write_text(json.dumps({"sites": [{"name": "limited", "domains": ["limit.test"], "maxConnections": 2,
                                              "maxMessagesPerConnection": 100}]}))
    sink = ScriptedSink("127.0.0.7", data_delay=0.05)
    try:
        server = delivering_server(make_server, dns, shapingFile=str(shaping))
        count = 40
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            for n in range(count):
                client.sendmail("app@sender.example", [f"user{n}@limit.test"], f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
        assert wait_until(lambda: len(sink.messages) >= count), f"{len(sink.messages)} of {count} delivered"
        assert sink.max_concurrent <= 2, f"{sink.max_concurrent} concurrent connections to a site limited to 2"
        assert sink.max_concurrent == 2, "both connections were used"
        assert sink.connections < count, f"{sink.connections} connections for {count} messages: reused"
        # The sink holds a message once it has replied 250; the relay records the delivery just after reading that reply.
        delivered = lambda: server.cli_json("log", "--status", "delivered", "--limit", "1000")
        assert wait_until(lambda: len(delivered()) >= count), f"{len(delivered())} of {count} recorded"
        events = delivered()
        assert len(events) == count and {e["site"] for e in events} == {"limited"}
        assert all(e["mxHost"] == "mx.limit.test" and e["remoteIP"] == "127.0.0.7" for e in events)
        # The same story on the admin port, in Prometheus text.
        assert server.admin("/healthz") == (200, "ok\n")
        # Counted just after the journal records the attempts.
        assert wait_until(lambda: server.metric("hikyaku_delivery_attempts_total", outcome="delivered", category="none") == count)
        assert wait_until(lambda: server.metric("hikyaku_delivery_latency_seconds_count") == count)
        assert server.metric("hikyaku_delivery_attempt_duration_seconds_count") >= count
        assert 0 <= server.metric("hikyaku_site_connections", site="limited") <= 2
        assert server.metric("hikyaku_queue_recipients", state="queued") == 0
        assert server.metric("hikyaku_queue_messages") == 0
        assert server.admin("/nothing")[0] == 404
    finally:
        sink.stop()


def test_sigkill_during_delivery_of_2000_messages_loses_nothing(make_server, dns):
    server = delivering_server(make_server, dns, minimumBackoffSeconds=1, maximumBackoffSeconds=2)
    count = 2000
    # No MX listening yet: everything is accepted and deferred first, so the
    # kill below lands in the middle of the delivery, not after it.
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as client:
        for n in range(count):
            client.sendmail("app@sender.example", [f"user{n % 50}@kill.test"],
                            f"Subject: {n}\r\nX-Seq: {n}\r\n\r\nbody {n}\r\n".encode())
    sink = ScriptedSink("127.0.0.8", data_delay=0.002)
    try:
        assert wait_until(lambda: len(sink.messages) >= 200, timeout=120, interval=0.02)
        server.kill()
        at_kill = len(sink.messages)
        assert at_kill < count, "the kill came before the end of the delivery"
        server.start()
        assert wait_until(lambda: server.queue() == [], timeout=300, interval=1), \
            f"still queued after restart: {len(server.queue())}"
        everything = server.cli_json("queue", "list", "--all", "--limit", "10000")
        assert len(everything) == count
        assert all(m["pendingCount"] == 0 for m in everything)
        states = {}
        for message in everything[::40]:
            for recipient in server.cli_json("queue", "show", message["id"])["recipients"]:
                states[recipient["state"]] = states.get(recipient["state"], 0) + 1
        assert states == {"delivered": 50}
        seen = {}
        for _, _, data in sink.messages:
            seq = int(data.split(b"X-Seq: ")[1].split(b"\r\n")[0])
            seen[seq] = seen.get(seq, 0) + 1
        assert sorted(seen) == list(range(count)), f"missing at the sink: {sorted(set(range(count)) - set(seen))[:20]}"
        duplicates = sum(n - 1 for n in seen.values())
        print(f"killed with {at_kill} of {count} at the sink; {duplicates} duplicates after the restart")
        # Only deliveries in flight at the kill (delivery.maxConcurrentMessages, 50) may repeat.
        assert duplicates <= 50
    finally:
        sink.stop()


def test_egress_pools_by_account(make_server, dns):
    sink = ScriptedSink("127.0.0.9")
    try:
        server = delivering_server(make_server, dns, egressPools=["default=127.0.0.20", "marketing=127.0.0.21 127.0.0.22"])
        username, password = server.create_account("acme", ["acme.example"])
        server.cli("account", "set-pool", "acme", "marketing")
        server.stop()
        server.start()  # the pool assignment is read at start and every 30 s
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            client.login(username, password)  # 127.0.0.0/8 is trusted: AUTH without TLS
            for n in range(4):
                client.sendmail("news@acme.example", [f"m{n}@pool.test"], b"Subject: pooled\r\n\r\nbody\r\n")
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            client.sendmail("app@sender.example", ["plain@pool.test"], b"Subject: default\r\n\r\nbody\r\n")
        assert wait_until(lambda: len(sink.messages) >= 5)
        by_recipient = {rcpts[0]: source for (_, rcpts, _), source in zip(sink.messages, sink.sources)}
        assert {by_recipient[f"m{n}@pool.test"] for n in range(4)} == {"127.0.0.21", "127.0.0.22"}, by_recipient
        assert by_recipient["plain@pool.test"] == "127.0.0.20"
        logged = {e["recipient"]: e["sourceIP"] for e in server.cli_json("log", "--status", "delivered")}
        assert logged == by_recipient
        assert server.cli("account", "set-pool", "nobody", "x", check=False).returncode != 0
    finally:
        sink.stop()


def self_signed(directory):
    """A throwaway certificate for a test server (openssl from the base system)."""
    import subprocess
    certificate, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                    "-days", "1", "-subj", "/CN=smarthost.test"], check=True, capture_output=True)
    return certificate, key


def test_smarthost_auth_only_under_tls_and_a_refusal_keeps_the_mail(make_server, tmp_path):
    import os
    import ssl
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    from conftest import free_udp_port

    certificate, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password, session.ssl is not None))
        # handled=False: aiosmtpd then answers 535 itself.
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"relay", b"s3cret"), handled=False)

    class Recorder:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((session.authenticated, envelope.rcpt_tos))
            return "250 2.0.0 relayed"

    recorder = Recorder()
    port = free_udp_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=True, tls_context=context, require_starttls=True)
    controller.start()
    try:
        # Credentials imply a verified certificate: this self-signed smarthost gets no password.
        secret = tmp_path / "password-s3cret"
        secret.write_text("s3cret\n")
        os.chmod(secret, 0o600)
        server = make_server(start=False, trustedNetworks=["127.0.0.0/8"])
        server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True,
                                     "smarthost": f"127.0.0.1:{port}", "smarthostUsername": "relay",
                                     "smarthostPasswordFile": str(secret)}
        server.start()
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            client.sendmail("app@sender.example", ["someone@example.org"], b"Subject: via smarthost\r\n\r\nbody\r\n")
        assert wait_until(lambda: server.cli_json("log", "--status", "deferred") != []), server.log()
        (event,) = server.cli_json("log", "--status", "deferred")
        assert event["enhancedCode"] == "4.7.5" and "CERTIFICATE_VERIFY_FAILED" in event["replyText"], event
        assert logins == [] and recorder.messages == []
        server.stop()
        # The operator opts out explicitly (a private smarthost with its own CA): required, unverified.
        for password, expect_delivered in (("s3cret", True), ("wrong", False)):
            secret = tmp_path / f"password-{password}"
            secret.write_text(password + "\n")
            os.chmod(secret, 0o600)
            server = make_server(start=False, trustedNetworks=["127.0.0.0/8"])
            server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True,
                                         "smarthost": f"127.0.0.1:{port}", "smarthostUsername": "relay",
                                         "smarthostPasswordFile": str(secret), "smarthostTlsPolicy": "required"}
            server.start()
            with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
                client.sendmail("app@sender.example", ["someone@example.org"], b"Subject: via smarthost\r\n\r\nbody\r\n")
            status = "delivered" if expect_delivered else "deferred"
            assert wait_until(lambda: server.cli_json("log", "--status", status) != []), server.log()
            (event,) = server.cli_json("log", "--status", status)
            if expect_delivered:
                assert recorder.messages[-1] == (True, ["someone@example.org"])
                assert event["tlsVersion"].startswith("tlsv1")
            else:
                assert (event["replyCode"], event["enhancedCode"]) == (454, "4.7.0"), event
                assert "refused our credentials" in event["replyText"] and "535" in event["replyText"]
            server.stop()
            assert password.encode() not in open(server.stderr_path, "rb").read()
        # Every AUTH came under TLS, with PLAIN.
        assert [(m, tls) for m, _, _, tls in logins] == [("PLAIN", True), ("PLAIN", True)]
    finally:
        controller.stop()


def test_routes_and_a_site_tls_policy(make_server, dns, tmp_path):
    shaping = tmp_path / "shaping.json"
    shaping.write_text(json.dumps({"sites": [{"name": "strict", "domains": ["limit.test"], "tlsPolicy": "required"}]}))
    routed = ScriptedSink("127.0.0.30", port=2525)
    strict = ScriptedSink("127.0.0.7")
    try:
        server = delivering_server(make_server, dns, shapingFile=str(shaping), routes=["routed.test=127.0.0.30:2525"])
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
            # routed.test has no DNS records at all: the route is used instead.
            client.sendmail("app@sender.example", ["a@routed.test"], b"Subject: routed\r\n\r\nbody\r\n")
            client.sendmail("app@sender.example", ["b@limit.test"], b"Subject: strict\r\n\r\nbody\r\n")
        assert wait_until(lambda: len(server.cli_json("log", "--status", "delivered", "--status", "deferred")) >= 2)
        (delivered,) = server.cli_json("log", "--status", "delivered")
        assert delivered["recipient"] == "a@routed.test" and delivered["remoteIP"] == "127.0.0.30"
        assert len(routed.messages) == 1
        (deferred,) = server.cli_json("log", "--status", "deferred")
        assert deferred["recipient"] == "b@limit.test" and deferred["enhancedCode"] == "4.7.10"
        assert deferred["category"] == "tls_failure" and strict.messages == []
    finally:
        routed.stop()
        strict.stop()

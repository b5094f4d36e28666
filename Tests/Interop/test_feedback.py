"""Return paths (VERP) and reports that come back: DSNs and plain-text
bounces sent by swaks to the return path, an ARF complaint, a forged return
path, and the suppressions they cause."""
import email
import json
import re
import smtplib
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from aiosmtpd.controller import Controller

from conftest import dnsmasq

MX_IP = "127.0.0.33"


class EnvelopeMX:
    def __init__(self):
        self.envelopes = {}
        self.contents = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("full"):
            return "552 5.2.2 <%s>: Mailbox full" % address
        if address.startswith("nobody"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        for recipient in envelope.rcpt_tos:
            self.envelopes[recipient] = envelope.mail_from
            self.contents.setdefault(recipient, []).append(envelope.original_content)
        return "250 2.0.0 accepted"

    def wait(self, recipient, count=1, timeout=30):
        deadline = time.time() + timeout
        while len(self.contents.get(recipient, [])) < count:
            assert time.time() < deadline, f"{recipient}: {len(self.contents.get(recipient, []))} of {count}"
            time.sleep(0.05)
        return email.message_from_bytes(self.contents[recipient][count - 1])


@pytest.fixture(scope="module")
def mx():
    handler = EnvelopeMX()
    controller = Controller(handler, hostname=MX_IP, port=25)
    controller.start()
    yield handler
    controller.stop()


def delivering_server(make_server, dns_port, **config):
    """A started server delivering through dnsmasq on `dns_port`, with account
    acme (domain acme.test) and an admin key in `server.token`; `config` adds sections."""
    server = make_server(start=False)
    server.config.update(config)
    server.config["dns"] = {"servers": [f"127.0.0.1:{dns_port}"], "timeoutMilliseconds": 1000}
    server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True}
    server.create_account("acme", ["acme.test"])
    server.token, _, _ = server.api_key("acme", "admin")
    return server.start()


def call(server, method, path, body=None):
    request = urllib.request.Request(server.api_url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + server.token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def swaks(server, recipient, data, sender="<>"):
    result = subprocess.run(["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--from", sender, "--to", recipient,
                             "--data", data, "--helo", "mx.receiver.test"], capture_output=True, text=True, timeout=60)
    return result


DSN = """From: MAILER-DAEMON@mx.fb.test
To: {verp}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system at host mx.fb.test. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.fb.test
Arrival-Date: Sun, 29 Nov 2026 06:00:00 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; store.fb.test
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown

--BOUNDARY
Content-Type: text/rfc822-headers

From: shop@acme.test
Subject: hello

--BOUNDARY--
"""

PLAIN = """From: postmaster@fb.test
To: {verp}
Subject: failure notice

Hi. This is the qmail-send program at fb.test.
I'm afraid I wasn't able to deliver your message to the following addresses.

<{recipient}>:
Remote host said: 552 5.2.2 <{recipient}>: Mailbox full, quota exceeded
"""

ARF = """From: feedback@isp.test
To: fbl@bounce.test
Subject: FW: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report for an email message received from IP 127.0.0.1.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeISP-FBL/1.0
Version: 1
Original-Rcpt-To: {recipient}

--ARF
Content-Type: message/rfc822

Return-Path: <{verp}>
From: shop@acme.test
To: {recipient}
Subject: hello

body
--ARF--
"""


def test_return_paths_bounces_and_complaints(make_server, mx):
    with dnsmasq("--mx-host=fb.test,mx.fb.test,10", f"--host-record=mx.fb.test,{MX_IP}") as port:
        server = delivering_server(make_server, port, bounce={"domain": "bounce.test"})
        recipients = ["one@fb.test", "two@fb.test", "three@fb.test", "nobody@fb.test"]
        status, body = call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": recipients, "subject": "hello",
                                                             "text": "hi"})
        assert status == 202
        message_id = body["id"]
        deadline = time.time() + 30
        while len(mx.envelopes) < 3:
            assert time.time() < deadline, mx.envelopes
            time.sleep(0.05)
        # Each recipient's copy left with its own return path, naming the message and the recipient.
        verps = {}
        for position, recipient in enumerate(recipients[:3]):
            sender = mx.envelopes[recipient]
            assert re.fullmatch(rf"b-{message_id}-{position}-[0-9a-z]{{16}}@bounce\.test", sender), sender
            verps[recipient] = sender
        assert len(set(verps.values())) == 3

        # The synchronous 550 5.1.1 suppresses the address at once.
        deadline = time.time() + 30
        while call(server, "GET", "/v1/suppressions/nobody@fb.test")[0] != 200:
            assert time.time() < deadline
            time.sleep(0.1)
        source = call(server, "GET", "/v1/suppressions/nobody@fb.test")[1]["source"]
        assert source.startswith(f"bounced message {message_id}: 550 5.1.1") and "User unknown" in source

        # A DSN, sent by swaks to the return path with the null sender.
        result = swaks(server, verps["one@fb.test"], DSN.format(verp=verps["one@fb.test"], recipient="one@fb.test"))
        assert result.returncode == 0 and "250 2.0.0 Report recorded" in result.stdout, result.stdout
        # A plain-text bounce quoting the remote reply.
        result = swaks(server, verps["two@fb.test"], PLAIN.format(verp=verps["two@fb.test"], recipient="two@fb.test"))
        assert result.returncode == 0 and "Report recorded" in result.stdout, result.stdout
        # An ARF complaint to the feedback mailbox, naming the return path in the original's headers.
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.sendmail("feedback@isp.test", ["fbl@bounce.test"],
                          ARF.format(verp=verps["three@fb.test"], recipient="three@fb.test").replace("\n", "\r\n").encode())

        status, details = call(server, "GET", f"/v1/messages/{message_id}")
        states = {r["address"]: r["state"] for r in details["recipients"]}
        assert states == {"one@fb.test": "bounced", "two@fb.test": "bounced", "three@fb.test": "delivered",
                          "nobody@fb.test": "bounced"}
        events = {(e["recipient"], e["type"]): e for e in details["events"]}
        one = events[("one@fb.test", "bounced")]
        assert one["site"] == "feedback" and one["enhanced_code"] == "5.1.1" and one["category"] == "invalid_recipient"
        assert one["hard"] is True and "User unknown" in one["reply_text"]
        two = events[("two@fb.test", "bounced")]
        assert two["reply_code"] == 552 and two["enhanced_code"] == "5.2.2" and two["category"] == "mailbox_full"
        three = events[("three@fb.test", "complained")]
        assert "abuse" in three["reply_text"]

        suppressions = {s["address"]: s for s in call(server, "GET", "/v1/suppressions")[1]["suppressions"]}
        assert suppressions["one@fb.test"]["reason"] == "bounce"
        assert suppressions["three@fb.test"]["reason"] == "complaint" and message_id in suppressions["three@fb.test"]["source"]
        assert "two@fb.test" not in suppressions, "a full mailbox is not a reason to suppress"

        # The compliance report: one complaint in three deliveries is far over 0.3 %.
        result = server.cli("domain", "check", "acme.test", "--server", f"127.0.0.1:{port}", "--json", check=False)
        assert result.returncode == 1
        checks = {c["name"]: c for c in json.loads(result.stdout)}
        assert checks["complaint_rate"]["status"] == "fail" and "1 complaints / 3 delivered" in checks["complaint_rate"]["detail"]
        assert checks["spf"]["status"] == "fail" and checks["dkim"]["status"] == "fail" and checks["dmarc"]["status"] == "fail"
        assert checks["one_click_unsubscribe"]["status"] == "fail" and "api.publicUrl" in checks["one_click_unsubscribe"]["fix"]
        assert checks["reverse_dns"]["status"] == "warn" and checks["tls"]["status"] == "warn"
        status, report = call(server, "GET", "/v1/domains/acme.test/compliance")
        assert status == 200 and {c["name"]: c["status"] for c in report["checks"]} == {n: c["status"] for n, c in checks.items()}
        assert call(server, "GET", "/v1/domains/other.test/compliance")[0] == 404
        status, created = call(server, "POST", "/v1/domains", {"domain": "news.acme.test", "algorithm": "ed25519"})
        assert status == 201 and created["active"] is True and created["record"]["value"].startswith("v=DKIM1; k=ed25519; p=")

        # The bounce analysis: by category and provider, top replies, recipients.
        status, analysis = call(server, "GET", "/v1/stats/bounces")
        # (The DSN Hikyaku sent to shop@acme.test for nobody@ bounces too: acme.test has no MX here.)
        assert status == 200 and analysis["total"] == 4, analysis
        categories = {c["name"]: c["bounces"] for c in analysis["by_category"]}
        assert categories == {"invalid_recipient": 2, "mailbox_full": 1, "bad_domain": 1}
        assert {"feedback", "mx:mx.fb.test"} <= {p["name"] for p in analysis["by_provider"]}
        assert any("User unknown" in r["text"] and "<recipient>" in r["text"] for r in analysis["top_replies"])
        assert {r["recipient"] for r in analysis["recipients"]} == {"one@fb.test", "two@fb.test", "nobody@fb.test", "shop@acme.test"}
        report = server.cli_json("report", "bounces", "--account", "acme")
        assert report["total"] == 4 and report["byCategory"][0]["name"] == "invalid_recipient"

        # A forged return path (wrong MAC) is refused at RCPT; relaying through the bounce domain is impossible.
        forged = re.sub(r"-[0-9a-z]{16}@", "-" + "0" * 16 + "@", verps["one@fb.test"])
        result = swaks(server, forged, DSN.format(verp=forged, recipient="one@fb.test"))
        assert result.returncode != 0 and "550 5.1.1 No such bounce address" in result.stdout
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.ehlo("mx.receiver.test")
            smtp.mail("<>")
            assert smtp.rcpt("someone@elsewhere.test")[0] == 554
            assert smtp.rcpt(verps["one@fb.test"])[0] == 250
        # Mail that is not a report is refused, so nothing is recorded from arbitrary mail.
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("<>", [verps["one@fb.test"]], b"Subject: hello\r\n\r\njust a message\r\n")
            assert refused.value.smtp_code == 550


def test_a_domains_own_return_path_is_used_once_its_mx_points_here(make_server, mx):
    """`domain return-path` gives acme.test the bounce domain bounce.acme.test
    (SPF then aligns with From): unused while its MX is missing, used once
    `domain verify` finds it naming this server, and reports sent there are
    recorded while a forged address there is refused."""
    server = make_server(start=False)
    server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme", "--algorithm", "ed25519")
    records = server.cli_json("domain", "return-path", "acme.test", "bounce.acme.test")
    by_type = {(r["name"], r["type"]): r["value"] for r in records}
    preference, exchange = by_type[("bounce.acme.test", "MX")].split()  # the hostname, as the CLI sees no --config
    assert preference == "10" and exchange == "localhost"
    assert by_type[("bounce.acme.test", "TXT")].startswith("v=spf1 ")
    result = server.cli("domain", "return-path", "acme.test", "bounce.other.test", check=False)
    assert result.returncode != 0 and "under it" in result.stderr
    result = server.cli("domain", "add", "x.acme.test", "--account", "acme", "--return-path", "bounce.other.test", check=False)
    assert result.returncode != 0 and "x.acme.test" not in [k["domain"] for k in server.cli_json("domain", "list")]
    dkim_txt = [f"--txt-record={r['name']},{r['value']}" for r in records if "_domainkey" in r["name"]]
    with dnsmasq("--mx-host=fb.test,mx.fb.test,10", f"--host-record=mx.fb.test,{MX_IP}") as delivery_dns:
        server.config["dns"] = {"servers": [f"127.0.0.1:{delivery_dns}"], "timeoutMilliseconds": 1000}
        server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True}
        server.token, _, _ = server.api_key("acme", "admin")
        server.start()
        with dnsmasq(*dkim_txt) as port:
            # No MX for the return path yet: verify says so, and mail keeps its sender.
            verification = json.loads(server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}", "--json",
                                                 check=False).stdout)
        assert verification["verified"] is True
        assert verification["return_path"] == {"domain": "bounce.acme.test", "verified": False}
        mx_check = [c for c in verification["records"] if c["type"] == "MX"][0]
        assert mx_check["status"] == "missing" and "bounces cannot come back" in mx_check["detail"]
        assert call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "before@fb.test", "subject": "s",
                                                     "text": "t"})[0] == 202
        mx.wait("before@fb.test")
        assert mx.envelopes["before@fb.test"] == "shop@acme.test"
        assert call(server, "GET", "/v1/domains")[1]["domains"][0]["return_path"] == {"domain": "bounce.acme.test", "verified": False}
        # Over the API: the return path must be under the domain, and a refused one adds nothing.
        status, error = call(server, "POST", "/v1/domains", {"domain": "news.acme.test", "return_path": "bounce.other.test"})
        assert status == 400 and "return_path" in error["error"]["message"]
        assert [d["domain"] for d in call(server, "GET", "/v1/domains")[1]["domains"]] == ["acme.test"]
        assert call(server, "POST", "/v1/domains", {"domain": "news.acme.test", "return_path": "rp.news.acme.test"})[0] == 201
        listed = {d["domain"]: d for d in call(server, "GET", "/v1/domains")[1]["domains"]}
        assert listed["news.acme.test"]["return_path"] == {"domain": "rp.news.acme.test", "verified": False}

        with dnsmasq(*dkim_txt, f"--mx-host=bounce.acme.test,{exchange},10") as port:
            # Its MX names this server: in use within 5 s, each copy leaving with a return path under acme.test.
            result = server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}", check=False)
            assert "return path bounce.acme.test: in use" in result.stdout, result.stdout
            time.sleep(6)
            status, body = call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "after@fb.test", "subject": "s",
                                                                 "text": "t"})
            assert status == 202
            mx.wait("after@fb.test")
            verp = mx.envelopes["after@fb.test"]
            assert re.fullmatch(rf"b-{body['id']}-0-[0-9a-z]{{16}}@bounce\.acme\.test", verp), verp
            # A DSN to it is recorded on the message; a forged address at the same domain is refused.
            result = swaks(server, verp, DSN.format(verp=verp, recipient="after@fb.test"))
            assert result.returncode == 0 and "Report recorded" in result.stdout, result.stdout
            status, details = call(server, "GET", f"/v1/messages/{body['id']}")
            assert {r["address"]: r["state"] for r in details["recipients"]} == {"after@fb.test": "bounced"}
            forged = re.sub(r"-[0-9a-z]{16}@", "-" + "0" * 16 + "@", verp)
            assert "550 5.1.1 No such bounce address" in swaks(server, forged, DSN.format(verp=forged, recipient="x@fb.test")).stdout
            # The compliance report sees SPF alignment through the domain's own return path.
            checks = {c["name"]: c for c in json.loads(server.cli("domain", "check", "acme.test", "--server", f"127.0.0.1:{port}",
                                                                    "--json", check=False).stdout)}
            assert "aligned (return path @bounce.acme.test)" in checks["dmarc_alignment"]["detail"], checks["dmarc_alignment"]


def test_one_click_unsubscribe_and_mailto(make_server, mx):
    with dnsmasq("--mx-host=fb.test,mx.fb.test,10", f"--host-record=mx.fb.test,{MX_IP}") as port:
        server = delivering_server(make_server, port, bounce={"domain": "bounce.test"})
        news = {"from": "news@acme.test", "subject": "今月のお知らせ", "text": "news", "marketing": True}
        assert call(server, "POST", "/v1/messages", {**news, "to": "reader@fb.test"})[0] == 202
        assert call(server, "POST", "/v1/messages", {**news, "to": "mailer@fb.test"})[0] == 202
        received = mx.wait("reader@fb.test")
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url, mailto = re.findall(r"<([^>]+)>", received["List-Unsubscribe"])
        assert url.startswith(f"http://127.0.0.1:{server.api_port}/u/") and mailto.startswith("mailto:u-")
        # Transactional mail carries no List-Unsubscribe.
        assert call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "receipt@fb.test", "subject": "receipt",
                                                     "text": "x"})[0] == 202
        assert "List-Unsubscribe" not in mx.wait("receipt@fb.test")

        # GET shows the page and changes nothing (link scanners follow GETs).
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        assert response.status == 200 and "配信停止" in page and 'name="List-Unsubscribe" value="One-Click"' in page
        assert call(server, "GET", "/v1/suppressions/reader@fb.test")[0] == 404
        # The one-click POST, as a mailbox provider sends it (RFC 8058).
        for _ in range(2):  # idempotent
            result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                     "-d", "List-Unsubscribe=One-Click", url], capture_output=True, text=True, timeout=30)
            assert result.stdout == "200"
        status, suppression = call(server, "GET", "/v1/suppressions/reader@fb.test")
        assert status == 200 and suppression["reason"] == "unsubscribe" and suppression["scope"] == "marketing"
        forged = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
        result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                 "-d", "List-Unsubscribe=One-Click", forged], capture_output=True, text=True, timeout=30)
        assert result.stdout == "404"

        # The mailto form, sent to the bounce domain.
        (mailer_mailto,) = [t for t in re.findall(r"<([^>]+)>", mx.wait("mailer@fb.test")["List-Unsubscribe"])
                            if t.startswith("mailto:")]
        address = mailer_mailto[len("mailto:"):].split("?")[0]
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.sendmail("mailer@fb.test", [address], b"Subject: unsubscribe\r\n\r\n\r\n")
        assert call(server, "GET", "/v1/suppressions/mailer@fb.test")[1]["source"].startswith("mailto unsubscribe")

        time.sleep(6)  # delivery re-reads suppressions every 5 s
        _, marketing = call(server, "POST", "/v1/messages", {**news, "to": "reader@fb.test"})
        _, transactional = call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "reader@fb.test",
                                                                 "subject": "receipt", "text": "x"})
        mx.wait("reader@fb.test", count=2)
        deadline = time.time() + 30
        while call(server, "GET", f"/v1/messages/{marketing['id']}")[1]["recipients"][0]["state"] != "suppressed":
            assert time.time() < deadline
            time.sleep(0.1)
        assert mx.wait("reader@fb.test", count=2)["Subject"] == "receipt", "the transactional one still goes out"
        events = call(server, "GET", "/v1/events?recipient=reader@fb.test&status=unsubscribed")[1]["events"]
        assert len(events) == 2 and all("one-click" in e["reply_text"] for e in events)


def test_soft_failures_suppress_only_when_they_repeat(make_server, mx):
    with dnsmasq("--mx-host=fb.test,mx.fb.test,10", f"--host-record=mx.fb.test,{MX_IP}") as port:
        server = delivering_server(make_server, port, suppression={"softBounces": 2, "softBounceDays": 7})

        def bounce_once():
            _, body = call(server, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "full@fb.test", "subject": "s", "text": "t"})
            deadline = time.time() + 30
            while call(server, "GET", f"/v1/messages/{body['id']}")[1]["recipients"][0]["state"] != "bounced":
                assert time.time() < deadline
                time.sleep(0.1)

        bounce_once()
        assert call(server, "GET", "/v1/suppressions/full@fb.test")[0] == 404, "one full mailbox is not enough"
        bounce_once()
        deadline = time.time() + 10  # suppressed just after the outcome is recorded
        while (result := call(server, "GET", "/v1/suppressions/full@fb.test"))[0] != 200:
            assert time.time() < deadline, result
            time.sleep(0.1)
        status, suppression = result
        assert status == 200 and suppression["reason"] == "bounce" and suppression["source"].startswith("2 soft failures in 7 days")

"""DKIM signing of relayed mail, verified by dkimpy and by opendkim (in
verify mode) against keys that dnsmasq serves: RSA and Ed25519, through the API and SMTP, a tampered copy failing,
a key rotation, and the default that only verified domains may be used."""
import json
import os
import smtplib
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import boto3
import dkim
import dns.resolver
import pytest
from aiosmtpd.controller import Controller

from conftest import dnsmasq

MX_IP = "127.0.0.32"


class RecordingMX:
    def __init__(self):
        self.messages = {}

    async def handle_DATA(self, server, session, envelope):
        for recipient in envelope.rcpt_tos:
            self.messages[recipient] = envelope.original_content
        return "250 2.0.0 accepted"

    def wait(self, recipient, timeout=30):
        deadline = time.time() + timeout
        while recipient not in self.messages:
            assert time.time() < deadline, f"nothing delivered to {recipient}"
            time.sleep(0.05)
        return self.messages[recipient]


@pytest.fixture(scope="module")
def mx():
    handler = RecordingMX()
    controller = Controller(handler, hostname=MX_IP, port=25)
    controller.start()
    yield handler
    controller.stop()


def txt_options(records):
    """dnsmasq --txt-record options for `hikyaku domain records --json`, long values in 255-octet strings."""
    options = []
    for record in records:
        if record["type"] != "TXT":
            continue
        value = record["value"]
        chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
        # Passed as argv, so no shell quoting: dnsmasq would keep quotes as part of the text.
        options.append("--txt-record=" + record["name"] + "," + ",".join(chunks))
    return options


def verifier(port):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        answer = resolver.resolve(name, "TXT", lifetime=timeout)
        return b"".join(b"".join(record.strings) for record in answer)

    def verify(message, idx=0):
        """The signature at `idx` (0: the topmost) verifies."""
        try:
            return dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException:
            return False
    return verify


def opendkim_verifier(port):
    """opendkim's own verification (`opendkim -t`, the milter's code path)
    through libunbound, forwarded to dnsmasq. Unbound answers NXDOMAIN for
    the reserved .test zone unless told otherwise, and does not query
    loopback servers by default."""
    directory = tempfile.mkdtemp(prefix="opendkim-")
    with open(os.path.join(directory, "unbound.conf"), "w") as conf:
        conf.write(f'server:\n    do-not-query-localhost: no\n    local-zone: "test." nodefault\n'
                   f'forward-zone:\n    name: "."\n    forward-addr: 127.0.0.1@{port}\n')
    with open(os.path.join(directory, "opendkim.conf"), "w") as conf:
        conf.write(f"Mode v\nSyslog no\nResolverConfiguration {directory}/unbound.conf\n")

    def verify(message):
        path = os.path.join(directory, "message.eml")
        with open(path, "wb") as file:
            file.write(message)
        result = subprocess.run(["opendkim", "-x", os.path.join(directory, "opendkim.conf"), "-t", path],
                                capture_output=True, text=True, timeout=30)
        output = result.stdout + result.stderr
        assert "verification" in output, output
        return ") succeeded" in output
    return verify


def signature_tags(message):
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    start = header.index("DKIM-Signature:")
    field = header[start:].split("\r\n")
    text = field[0]
    for line in field[1:]:
        if not line.startswith(("\t", " ")):
            break
        text += line
    return {k.strip(): v.strip() for k, v in (tag.split("=", 1) for tag in text[len("DKIM-Signature:"):].split(";") if "=" in tag)}


def test_relayed_mail_is_dkim_signed_rsa_and_ed25519(make_server, mx):
    server = make_server(start=False)
    user, password = server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme")
    # An Ed25519 key beside the RSA one: both sign (RFC 8463 §4).
    server.cli("domain", "add", "acme.test", "--account", "acme", "--algorithm", "ed25519")
    server.cli("domain", "add", "mail.acme.test", "--account", "acme", "--algorithm", "ed25519")
    # Rotation: a second, not yet active RSA key for acme.test, published with the others.
    rotated = server.cli_json("domain", "rotate", "acme.test")
    assert [r["purpose"] for r in rotated if "_domainkey" in r["name"]].count("DKIM key (active)") == 2
    records = rotated + server.cli_json("domain", "records", "mail.acme.test")
    keys = {key["domain"] + "/" + key["selector"]: key for key in server.cli_json("domain", "list")}
    assert [k["algorithm"] for k in keys.values()].count("ed25519") == 2
    selectors = [k["selector"] for k in keys.values() if k["domain"] == "acme.test" and k["algorithm"] == "rsa"]
    assert len(selectors) == 2
    token, _, _ = server.api_key("acme", "send")
    with dnsmasq("--mx-host=dkim.test,mx.dkim.test,10", f"--host-record=mx.dkim.test,{MX_IP}", *txt_options(records)) as port:
        server.config["dns"] = {"servers": [f"127.0.0.1:{port}"], "timeoutMilliseconds": 1000}
        server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True}
        server.start()
        verify = verifier(port)
        opendkim = opendkim_verifier(port)

        def api_send(sender, recipient):
            body = json.dumps({"from": f"Shop <{sender}>", "to": recipient, "subject": "ご注文 確認",
                               "text": "本文  two  spaces \nline\n", "html": "<p>本文</p>",
                               "attachments": [{"filename": "a.txt", "content": "aGVsbG8="}]}).encode()
            request = urllib.request.Request(server.api_url + "/v1/messages", data=body, method="POST",
                                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202

        api_send("shop@acme.test", "rsa@dkim.test")
        rsa = mx.wait("rsa@dkim.test")
        assert verify(rsa) and opendkim(rsa)
        tags = signature_tags(rsa)
        assert tags["a"] == "rsa-sha256" and tags["d"] == "acme.test" and tags["c"] == "relaxed/relaxed"
        first_selector = tags["s"]
        assert keys[f"acme.test/{first_selector}"]["active"] is True
        signed = tags["h"].replace("\r\n", "").replace("\t", "").split(":")
        assert signed.count("from") == 2, "From is over-signed"
        assert {"subject", "date", "to", "message-id"} <= set(signed)
        assert not verify(rsa.replace(b"Subject: ", b"Subject: Re: ", 1)), "a changed header fails"
        assert not opendkim(rsa.replace(b"Subject: ", b"Subject: Re: ", 1))
        assert not verify(rsa.replace(b"From: Shop", b"From: Shop\r\nFrom: evil@example.org", 1)), "an added From fails"
        # The second signature is the Ed25519 one, over the same message.
        assert rsa.count(b"DKIM-Signature:") == 2 and verify(rsa, idx=1)
        assert b"a=ed25519-sha256" in rsa and not verify(rsa.replace(b"Subject: ", b"Subject: Re: ", 1), idx=1)

        # SMTP submission from the Ed25519 domain.
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.starttls()
            smtp.login(user, password)
            smtp.sendmail("news@mail.acme.test", ["ed@dkim.test"],
                          b"From: News <news@mail.acme.test>\r\nTo: ed@dkim.test\r\nSubject: hello\r\n\r\nbody\r\n")
        ed = mx.wait("ed@dkim.test")
        assert signature_tags(ed)["a"] == "ed25519-sha256" and verify(ed) and opendkim(ed)
        assert not verify(ed.replace(b"body", b"bodY")) and not opendkim(ed.replace(b"body", b"bodY"))
        assert not opendkim(ed.replace(b"Subject: hello", b"Subject: hallo"))

        # Mail from a domain without a key goes unsigned.
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.starttls()
            smtp.login(user, password)
            smtp.sendmail("app@acme.test", ["plain@dkim.test"],
                          b"From: other@unsigned.test\r\nTo: plain@dkim.test\r\nSubject: x\r\n\r\nbody\r\n")
        assert b"DKIM-Signature" not in mx.wait("plain@dkim.test")

        # Switch to the second key: new mail is signed with it within seconds.
        (second,) = [s for s in selectors if s != first_selector]
        server.cli("domain", "activate", "acme.test", second)
        time.sleep(6)
        api_send("shop@acme.test", "rotated@dkim.test")
        rotated_message = mx.wait("rotated@dkim.test")
        assert signature_tags(rotated_message)["s"] == second and verify(rotated_message)
        assert rotated_message.count(b"DKIM-Signature:") == 2 and verify(rotated_message, idx=1), "the Ed25519 key stays active"
    assert "PRIVATE KEY" not in server.log() and "p=" not in server.log()


def test_domain_verify_reports_ok_missing_and_wrong(make_server):
    server = make_server(start=False)
    server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme")
    server.cli("domain", "add", "other.test", "--account", "acme", "--algorithm", "ed25519")
    records = server.cli_json("domain", "records", "acme.test")
    (dkim_record,) = [r for r in records if "_domainkey" in r["name"]]
    other_key = [r for r in server.cli_json("domain", "records", "other.test") if "_domainkey" in r["name"]][0]["value"]
    published = txt_options([dkim_record]) + [
        "--txt-record=acme.test,v=spf1 ip4:192.0.2.1 -all",       # wrong: lacks the relay's mechanism
        f"--txt-record=hk00000000._domainkey.other.test,{other_key}",
    ]
    with dnsmasq(*published) as port:
        result = server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}", "--json", check=False)
        assert result.returncode == 1
        verification = json.loads(result.stdout)
        assert verification["verified"] is True, "the DKIM record is what verifies a domain"
        checks = {c["name"]: c for c in verification["records"]}
        assert checks[dkim_record["name"]]["status"] == "ok"
        assert checks["acme.test"]["status"] == "wrong" and checks["acme.test"]["found"] == ["v=spf1 ip4:192.0.2.1 -all"]
        assert "a:localhost" in checks["acme.test"]["detail"]  # hostname, as the CLI sees no --config
        assert checks["_dmarc.acme.test"]["status"] == "missing" and checks["_dmarc.acme.test"]["found"] == []
        # other.test: its selector's record is absent (a key is published under another selector only).
        result = server.cli("domain", "verify", "other.test", "--server", f"127.0.0.1:{port}", check=False)
        assert result.returncode == 1 and "MISSING" in result.stdout and "._domainkey.other.test" in result.stdout
    # Publishing the wrong key under the right selector is "wrong", not "ok".
    wrong_key = dkim_record["name"] + "," + other_key
    with dnsmasq("--txt-record=" + wrong_key, "--txt-record=acme.test,v=spf1 a:localhost ~all",
                 "--txt-record=_dmarc.acme.test,v=DMARC1; p=reject") as port:
        verification = json.loads(server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}", "--json",
                                             check=False).stdout)
        checks = {c["name"]: c for c in verification["records"]}
        assert checks[dkim_record["name"]]["status"] == "wrong" and verification["verified"] is False
        assert checks["acme.test"]["status"] == "ok" and checks["_dmarc.acme.test"]["status"] == "ok"


def api_call(server, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.api_url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_only_verified_domains_may_send(make_server):
    server = make_server(start=False)
    # The default; conftest turns it off for the other tests. Re-checking stays off, so that only verify decides here.
    server.config["domains"] = {"requireVerified": True, "reverifySeconds": 0}
    user, password = server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme", "--algorithm", "ed25519")
    token, access_key, secret = server.api_key("acme", "admin")
    message = {"from": "shop@acme.test", "to": "someone@example.net", "subject": "s", "text": "t"}

    def smtp_session():
        smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20)
        smtp.starttls()
        smtp.login(user, password)
        return smtp

    with dnsmasq(*txt_options(server.cli_json("domain", "records", "acme.test"))) as port:
        server.config["dns"] = {"servers": [f"127.0.0.1:{port}"], "timeoutMilliseconds": 1000}
        server.start()
        # Added but not verified: refused on SMTP (at MAIL) and the API.
        with smtp_session() as smtp:
            code, text = smtp.mail("shop@acme.test")
            assert code == 553 and text.startswith(b"5.7.1") and b"not verified" in text
        status, body = api_call(server, "POST", "/v1/messages", token, message)
        assert status == 403 and body["error"]["code"] == "sender_not_allowed" and "not verified" in body["error"]["message"]
        status, body = api_call(server, "GET", "/v1/domains", token)
        assert [(d["domain"], d["verified"]) for d in body["domains"]] == [("acme.test", False)]

        # Verified through the API: the DKIM record dnsmasq serves is the key's.
        status, body = api_call(server, "POST", "/v1/domains/acme.test/verify", token)
        assert status == 200 and body["verified"] is True
        assert {r["status"] for r in body["records"] if "_domainkey" in r["name"]} == {"ok"}
        assert api_call(server, "POST", "/v1/domains/nobody.test/verify", token)[0] == 404
        assert api_call(server, "POST", "/v1/messages", token, message)[0] == 202
        with smtp_session() as smtp:
            smtp.sendmail("shop@acme.test", ["a@example.net"], b"From: Shop <shop@acme.test>\r\nSubject: ok\r\n\r\nbody\r\n")
            # The From field is checked too, every domain in it, display name and all.
            for from_field in (b"From: ceo@victim.test", b'From: "shop@acme.test" <ceo@victim.test>',
                               b"From: shop@acme.test, ceo@victim.test", b"From: shop@acme.test\r\nFrom: ceo@victim.test"):
                with pytest.raises(smtplib.SMTPDataError) as refused:
                    smtp.sendmail("shop@acme.test", ["a@example.net"], from_field + b"\r\nSubject: x\r\n\r\nbody\r\n")
                # A second From field breaks RFC 5322 §3.6 itself (5.6.0); the others name another domain (5.7.1).
                expected = b"5.6.0" if from_field.count(b"From:") == 2 else b"5.7.1"
                assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(expected), from_field
        # A raw SES message is held to its own From field as well as to the sender.
        ses = boto3.client("sesv2", endpoint_url=server.api_url, region_name="ap-northeast-1",
                           aws_access_key_id=access_key, aws_secret_access_key=secret)
        raw = b"From: ceo@victim.test\r\nTo: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
        with pytest.raises(ses.exceptions.MailFromDomainNotVerifiedException):
            ses.send_email(FromEmailAddress="shop@acme.test", Content={"Raw": {"Data": raw}})
        ses.send_email(FromEmailAddress="shop@acme.test", Content={"Raw": {"Data": raw.replace(b"ceo@victim", b"shop@acme")}})

    # The record withdrawn: verifying again takes the domain back off, and new sessions are refused.
    with dnsmasq() as port:
        result = server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}", check=False)
        assert result.returncode == 1 and "not verified" in result.stdout
    with smtp_session() as smtp:
        assert smtp.mail("shop@acme.test")[0] == 553


def test_the_server_rechecks_domains_by_itself(make_server):
    """With domains.reverifySeconds the server verifies a domain whose record
    is published without anyone running `domain verify`, and a DNS outage
    does not take a verified domain out of use."""
    server = make_server(start=False)
    server.config["domains"] = {"requireVerified": True, "reverifySeconds": 1}
    user, password = server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme", "--algorithm", "ed25519")

    def mail_from():
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
            smtp.starttls()
            smtp.login(user, password)
            return smtp.mail("shop@acme.test")[0]

    with dnsmasq(*txt_options(server.cli_json("domain", "records", "acme.test"))) as port:
        server.config["dns"] = {"servers": [f"127.0.0.1:{port}"], "timeoutMilliseconds": 500}
        server.start()
        deadline = time.time() + 30
        while mail_from() != 250:
            assert time.time() < deadline, "the published key was never found"
            time.sleep(0.5)
        assert "sending domain re-checked" in server.log() and "verified=true" in server.log().replace(" ", "")
    # dnsmasq is gone: every lookup fails, which is no evidence against the domain.
    time.sleep(4)
    assert mail_from() == 250
    assert server.cli_json("account", "list")[0]["verifiedDomains"] == ["acme.test"]

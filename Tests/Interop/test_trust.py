"""Hostile input over real sockets (docs/security.md): every byte sequence that
once crashed or fooled the server is sent to the built binary, and after each
the process must still be running, answer a new connection, and have held its
policy (the refusal given, nothing queued)."""
import base64
import concurrent.futures
import hashlib
import json
import smtplib
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import RawClient, dnsmasq
from test_dkim import txt_options


def assert_alive(server):
    """The process runs, a new SMTP connection is greeted, and the API answers."""
    assert server.proc.poll() is None, "the server died: " + server.log()
    client = RawClient(server.smtp_port)
    try:
        assert client.reply()[0] == 220
        assert client.command("EHLO alive.test")[0] == 250
    finally:
        client.close()
    with urllib.request.urlopen(server.api_url + "/openapi.json", timeout=10) as response:
        assert response.status == 200


def api(server, method, path, body=None, token=None, headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.api_url + path, data=data, method=method)
    if token is not False:
        request.add_header("Authorization", "Bearer " + (token or server.token))
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"{}")
        except ValueError:
            return error.code, raw


def queued(server):
    return server.cli_json("queue", "list")


@pytest.fixture
def verified(make_server):
    """A server that requires verified domains (the default), with account acme whose acme.test is verified through
    DNS: SMTP credentials in `server.smtp_login`, an admin key in `server.token` and SES keys."""
    server = make_server(start=False)
    server.config["domains"] = {"requireVerified": True, "reverifySeconds": 0}
    server.smtp_login = server.create_account("acme", ["acme.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme", "--algorithm", "ed25519")
    server.token, server.access_key, server.secret = server.api_key("acme", "admin")
    with dnsmasq(*txt_options(server.cli_json("domain", "records", "acme.test"))) as port:
        server.cli("domain", "verify", "acme.test", "--server", f"127.0.0.1:{port}")
    server.start()
    return server


def acme_server(make_server, start=True, **api):
    """A server (domains need not be verified) with account acme on acme.example and an admin key in `server.token`."""
    server = make_server(start=False)
    if api:
        server.config["api"] = {"listen": "127.0.0.1:0", **api}
    server.create_account("acme", ["acme.example"])
    server.token, server.access_key, server.secret = server.api_key("acme", "admin")
    return server.start() if start else server


def smtp_login(server):
    smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20)
    smtp.starttls()
    smtp.login(*server.smtp_login)
    return smtp


# One unauthenticated email to the bounce domain once killed the process: a status of full-width digits.
@pytest.mark.parametrize("line", ["Status: 4\uff10\uff10 mailbox busy", "\uff15\uff15\uff10 5.1.1 no such user",
                                  "550-", "4\u0663\u0660 x", "99999999999999999999999999 5.1.1 x"])
def test_reports_from_strangers_cannot_crash_the_server(make_server, line):
    server = make_server(start=False)
    server.config["bounce"] = {"domain": "bounce.test"}
    server.start()
    client = RawClient(server.smtp_port)
    client.reply()
    client.command("EHLO mx.stranger.test")
    assert client.command("MAIL FROM:<>")[0] == 250
    assert client.command("RCPT TO:<postmaster@bounce.test>")[0] == 250
    assert client.command("DATA")[0] == 354
    client.send(("Subject: failure notice\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + line + "\r\n.\r\n").encode())
    code, text = client.reply()
    assert code in (250, 550), text
    client.close()
    assert_alive(server)


def test_malformed_reports_are_refused(make_server):
    server = make_server(start=False)
    server.config["bounce"] = {"domain": "bounce.test"}
    server.start()
    for body in (b"From\r\n\r\n550 5.1.1 gone\r\n", b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\nbad line\r\n\r\n--x--\r\n"):
        client = RawClient(server.smtp_port)
        client.begin_data(sender="", recipient="postmaster@bounce.test")
        client.send(body + b".\r\n")
        code, text = client.reply()
        assert code == 550 and text.startswith("550 5.6.0"), text
        client.close()
    assert_alive(server)


# A tenant's header line that is only `From` (no colon) once trapped the DKIM parser.
def test_a_field_without_a_colon_is_refused(verified):
    with smtp_login(verified) as smtp:
        for header in (b"From\r\nSubject: x", b"Subject: x\r\nFrom", b"From: shop@acme.test\r\n\tfolded\r\nX"):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("shop@acme.test", ["a@example.net"], header + b"\r\n\r\nbody\r\n")
            assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.6.0"), header
    assert queued(verified) == []
    assert_alive(verified)


# Each of these From fields once passed the check, which read "every domain found is verified" (true of none).
@pytest.mark.parametrize("from_field", [
    b"From: CEO", b"From: =?utf-8?b?Q0VP?=", b"From: undisclosed:;", b"From: ceo", b"From: Team: shop@acme.test;",
    b"From: ceo@victim.test <shop@acme.test>", b'From: "ceo@victim.test" <shop@acme.test>',
    b"From: =?utf-8?q?ceo=40victim=2Etest?= <shop@acme.test>", b"From: shop@acme.test (ceo@victim.test)",
    b"From: shop@acme.test\r\nSender: ceo@victim.test", b"From: shop@acme.test\r\nResent-From: ceo@victim.test",
    b"Subject: no author at all",
])
def test_authors_must_be_mailboxes_of_verified_domains(verified, from_field):
    with smtp_login(verified) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("shop@acme.test", ["a@example.net"], from_field + b"\r\nTo: a@example.net\r\n\r\nbody\r\n")
        assert refused.value.smtp_code == 550, refused.value
        assert refused.value.smtp_error[:5] in (b"5.7.1", b"5.6.0"), refused.value
        # The same message is fine from the verified mailbox.
        smtp.sendmail("shop@acme.test", ["a@example.net"], b"From: Shop <shop@acme.test>\r\nSubject: ok\r\n\r\nbody\r\n")
    assert len(queued(verified)) == 1
    assert_alive(verified)


def test_the_apis_hold_the_same_author_policy(verified):
    # A header the native API lets a caller set cannot name another domain's author.
    status, body = api(verified, "POST", "/v1/messages", {"from": "shop@acme.test", "to": "a@example.net", "subject": "s",
                                                          "text": "t", "headers": {"Sender": "ceo@victim.test"}})
    assert status == 403 and body["error"]["code"] == "sender_not_allowed", body
    status, body = api(verified, "POST", "/v1/messages", {"from": {"email": "shop@acme.test", "name": "ceo@victim.test"},
                                                          "to": "a@example.net", "subject": "s", "text": "t"})
    assert status == 403, body
    # SES Raw: a bare CR before From is one field to a CRLF reader and two lines to others; refused, not guessed.
    ses = __import__("boto3").client("sesv2", endpoint_url=verified.api_url, region_name="ap-northeast-1",
                                     aws_access_key_id=verified.access_key, aws_secret_access_key=verified.secret)
    for raw, error in ((b"From: shop@acme.test\r\nSubject: hi\rFrom: ceo@victim.test\r\nTo: a@example.net\r\n\r\nbody\r\n",
                        "MessageRejected"),
                       (b"From: undisclosed:;\r\nTo: a@example.net\r\n\r\nbody\r\n", "MailFromDomainNotVerifiedException"),
                       (b"From: ceo\r\nTo: a@example.net\r\n\r\nbody\r\n", "MessageRejected")):
        with pytest.raises(ses.exceptions.ClientError) as refused:
            ses.send_email(FromEmailAddress="shop@acme.test", Content={"Raw": {"Data": raw}})
        assert refused.value.response["Error"]["Code"] == error, (raw, refused.value.response)
    assert queued(verified) == []
    assert_alive(verified)


# A SendGrid send_at of 10^16 was stored, then trapped when the message was formatted.
def test_far_future_send_times_are_refused(make_server):
    server = acme_server(make_server)
    mail = {"personalizations": [{"to": [{"email": "a@example.net"}]}], "from": {"email": "shop@acme.example"},
            "subject": "s", "content": [{"type": "text/plain", "value": "t"}]}
    for send_at in (10 ** 16, 2 ** 62, int(time.time()) + 73 * 3600):
        status, body = api(server, "POST", "/v3/mail/send", dict(mail, send_at=send_at))
        assert status == 400 and "send_at" in json.dumps(body), body
    status, body = api(server, "POST", "/v1/messages", {"from": "shop@acme.example", "to": "a@example.net",
                                                         "subject": "s", "text": "t", "send_at": 1e16})
    assert status == 400, body
    status, _ = api(server, "POST", "/v3/mail/send", dict(mail, send_at=int(time.time()) + 3600))
    assert status == 202
    assert len(queued(server)) == 1
    assert_alive(server)


def signed_request(server, body, headers=None):
    request = AWSRequest(method="POST", url=server.api_url + "/v2/email/outbound-emails", data=body,
                         headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(server.access_key, server.secret), "ses", "ap-northeast-1").add_auth(request)
    return dict(request.headers.items())


def send_raw_http(server, headers, body):
    request = urllib.request.Request(server.api_url + "/v2/email/outbound-emails", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# A captured SES request could be sent again with another body: the signature covered a hash the client declared.
def test_a_captured_ses_request_cannot_carry_another_body_or_be_replayed(make_server):
    server = acme_server(make_server)

    def mail(to):
        return json.dumps({"FromEmailAddress": "shop@acme.example", "Destination": {"ToAddresses": [to]},
                           "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}}}).encode()

    original = mail("a@example.net")
    headers = signed_request(server, original, {"X-Amz-Content-SHA256": hashlib.sha256(original).hexdigest()})
    assert send_raw_http(server, headers, original)[0] == 200
    # The same signature and declared hash with another body: the body is hashed, not the claim.
    status, body = send_raw_http(server, headers, mail("victim@example.net"))
    assert status == 401, body
    # The exact request again: already used, however the signature is spelled.
    status, body = send_raw_http(server, headers, original)
    assert status == 403 and "already used" in body["message"], body
    prefix, signature = headers["Authorization"].split("Signature=")
    shouted = dict(headers, Authorization=prefix + "Signature=" + signature.upper())
    status, body = send_raw_http(server, shouted, original)
    assert status == 403 and "already used" in body["message"], body
    (message,) = queued(server)
    assert [r["address"] for r in server.cli_json("queue", "show", message["id"])["recipients"]] == ["a@example.net"]
    # Nor after the server is killed and started again: the memory is kept on disk. (The captured bytes
    # name the port the request was signed for; the new process listens on another.)
    captured = dict(headers, Host=urllib.parse.urlsplit(server.api_url).netloc)
    server.kill()
    server.start()
    status, body = send_raw_http(server, captured, original)
    assert status == 403 and "already used" in body["message"], body
    assert len(queued(server)) == 1
    assert_alive(server)


@pytest.fixture
def limited(make_server):
    server = acme_server(make_server, start=False, idleTimeoutSeconds=2, requestTimeoutSeconds=2, maxConnectionsPerClient=4)
    server.config["smtp"]["maxAuthFailuresPerClient"] = 5
    return server.start()


def http_head(server, head):
    sock = socket.create_connection(("127.0.0.1", server.api_port), timeout=10)
    sock.sendall(head)
    return sock


def read_status(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1") else None


# Unauthenticated clients could make the server read 20 MB bodies, were never throttled and never timed out.
def test_unauthenticated_clients_are_answered_before_their_body_and_throttled(limited):
    # The body is never sent: any answer at all (before the 2 s request deadline closes the connection) came from the headers.
    sock = http_head(limited, b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 20000000\r\n\r\n")
    assert read_status(sock) == 401, "answered from the headers"
    sock.close()
    statuses = []
    for token in ("wrong", None, "wrong", "wrong", "wrong", "wrong"):
        statuses.append(api(limited, "GET", "/v1/account", token=token or False)[0])
    assert statuses[:4] == [401] * 4 and statuses[-1] == 429, statuses
    assert api(limited, "GET", "/v1/account")[0] == 429, "even a good key waits once the address is throttled"


def test_idle_slow_and_excess_connections_are_closed(limited):
    # Idle: closed after api.idleTimeoutSeconds.
    idle = http_head(limited, b"")
    started = time.time()
    assert idle.recv(1) == b"" and time.time() - started < 8
    # A body trickled one byte a second: the whole request must arrive within api.requestTimeoutSeconds.
    slow = http_head(limited, b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + limited.token.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    started = time.time()
    closed = False
    for _ in range(30):
        try:
            slow.sendall(b" ")
            slow.settimeout(1)
            if slow.recv(1) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    assert closed and time.time() - started < 10, "a slow request is cut off"
    # Four connections per client; a fifth is closed at once.
    held = [http_head(limited, b"") for _ in range(4)]
    time.sleep(0.3)
    extra = http_head(limited, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    extra.settimeout(5)
    try:
        assert extra.recv(1) == b"", "no answer, the connection closed"
    except ConnectionResetError:
        pass  # closed with the request unread: a reset, which is as good
    for sock in held + [extra, idle, slow]:
        sock.close()
    time.sleep(0.5)
    assert_alive(limited)


# Password guesses sent at once on many connections count from the moment each starts.
def test_parallel_auth_guesses_are_counted_when_they_start(make_server):
    server = make_server(trustedNetworks=["127.0.0.0/8"], maxAuthFailuresPerClient=3)
    server.create_account("acme", ["acme.example"])
    plain = base64.b64encode(b"\0nobody\0wrong").decode()

    def guess(_):
        client = RawClient(server.smtp_port)
        try:
            client.reply()
            client.command("EHLO guesser")
            return client.command("AUTH PLAIN " + plain)[0]
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(8)))
    assert codes.count(535) <= 3 and codes.count(454) >= 5, codes
    assert_alive(server)


# A thousand recipients times a large attachment, or a template that multiplies, is refused before it is built.
def test_requests_that_would_expand_are_refused_before_building(make_server):
    server = acme_server(make_server)
    attachment = base64.b64encode(b"x" * (1 << 20)).decode()
    # request_too_large comes from the estimate made before building (MessageDraft.messages).
    status, body = api(server, "POST", "/v1/messages", {
        "from": "shop@acme.example", "subject": "s", "text": "t",
        "recipients": [{"to": f"r{i}@example.net"} for i in range(1000)],
        "attachments": [{"filename": "a.bin", "content": attachment}]})
    # "would exceed": the estimate's words; what is counted while building says "the messages exceed".
    assert status == 413 and body["error"]["code"] == "request_too_large" and "would exceed" in body["error"]["message"], body
    status, body = api(server, "POST", "/v1/messages", {
        "from": "shop@acme.example", "to": "a@example.net", "subject": "s",
        "text": "{{#l}}{{#l}}{{#l}}{{#l}}xxxxxxxxxx{{/l}}{{/l}}{{/l}}{{/l}}",
        "template_data": {"l": list(range(1000))}})
    assert status == 413 and body["error"]["code"] == "template_output_too_large", body
    status, body = api(server, "POST", "/v3/mail/send", {
        "personalizations": [{"to": [{"email": "a@example.net"}], "substitutions": {"-a-": "y" * 100000}}],
        "from": {"email": "shop@acme.example"}, "subject": "s", "content": [{"type": "text/plain", "value": "-a-" * 10000}]})
    assert status == 413, body
    assert queued(server) == []
    assert_alive(server)


# An admin key could add another customer's domain and so keep the real owner from adding it.
def test_an_unverified_claim_neither_sends_nor_blocks_the_owner(make_server):
    server = make_server(start=False)
    server.config["domains"] = {"requireVerified": True, "reverifySeconds": 0}
    server.create_account("squatter", ["squat.test"])
    owner_login = server.create_account("owner", ["owner.test"])
    squatter_token, _, _ = server.api_key("squatter", "admin")
    owner_token, _, _ = server.api_key("owner", "admin")
    server.start()
    assert api(server, "POST", "/v1/domains", {"domain": "victim.test", "algorithm": "ed25519"}, token=squatter_token)[0] == 201
    # The owner adds the same domain: the claim above does not stand in the way.
    status, key = api(server, "POST", "/v1/domains", {"domain": "victim.test", "algorithm": "ed25519"}, token=owner_token)
    assert status == 201, key
    record = key["record"]
    with dnsmasq(f"--txt-record={record['name']},{record['value']}") as port:
        server.cli("domain", "verify", "victim.test", "--server", f"127.0.0.1:{port}", check=False)
    status, body = api(server, "GET", "/v1/domains", token=owner_token)
    assert [(d["domain"], d["verified"]) for d in body["domains"] if d["domain"] == "victim.test"] == [("victim.test", True)]
    status, body = api(server, "GET", "/v1/domains", token=squatter_token)
    assert [(d["domain"], d["verified"]) for d in body["domains"] if d["domain"] == "victim.test"] == [("victim.test", False)]
    # Now the domain is the owner's: the squatter can neither add it again nor send from it.
    assert api(server, "POST", "/v1/domains", {"domain": "victim.test"}, token=squatter_token)[0] == 409
    message = {"from": "ceo@victim.test", "to": "a@example.net", "subject": "s", "text": "t"}
    assert api(server, "POST", "/v1/messages", message, token=squatter_token)[0] == 403
    assert api(server, "POST", "/v1/messages", message, token=owner_token)[0] == 202
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as smtp:
        smtp.starttls()
        smtp.login(*owner_login)
        smtp.sendmail("ceo@victim.test", ["a@example.net"], b"From: ceo@victim.test\r\nSubject: ok\r\n\r\nbody\r\n")
    assert len(queued(server)) == 2
    assert_alive(server)


# SMTP clients may not fall back to TLS 1.0 or 1.1 (smtp.tlsMinimumVersion, 1.2 by default).
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_old_tls_versions_are_refused(make_server):
    import ssl
    server = make_server()
    for version, accepted in ((ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = version
        try:
            with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="mx.test") as tls:
                    greeting = tls.recv(100)
                    handshaken = greeting.startswith(b"220")
        except (ssl.SSLError, ConnectionResetError):
            handshaken = False
        assert handshaken == accepted, version
    assert_alive(server)


# The store holds sealed secrets and every message: its files are the service user's alone.
def test_data_files_are_private_and_a_wide_directory_is_reported(make_server):
    import os
    import stat
    server = make_server(start=False)
    os.makedirs(server.data_dir, exist_ok=True)
    os.chmod(server.data_dir, 0o755)
    server.start()
    assert "readable by others" in server.log()
    for name in ("hikyaku.sqlite", "secrets.key", os.path.join("spool", "queue.sqlite")):
        path = os.path.join(server.data_dir, name)
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
    assert_alive(server)

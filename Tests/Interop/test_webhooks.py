"""Events out: webhooks in the native (Standard Webhooks), SendGrid and SES/SNS
formats, verified by their own libraries, and open/click tracking; real mail
through an aiosmtpd MX behind dnsmasq."""
import base64
import email
import email.policy
import http.server
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
import sendgrid
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sendgrid.helpers.eventwebhook import EventWebhook
from standardwebhooks.webhooks import Webhook

from conftest import dnsmasq

MX_IP = "127.0.0.34"


class RecordingMX:
    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table" % address
        if address.startswith("slow"):
            return "451 4.7.1 <%s>: Recipient address rejected: Greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        for recipient in envelope.rcpt_tos:
            self.messages.append((recipient, envelope.original_content))
        return "250 2.0.0 accepted"

    def for_recipient(self, address, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for recipient, content in self.messages:
                if recipient == address:
                    return email.message_from_bytes(content, policy=email.policy.default)
            time.sleep(0.05)
        raise AssertionError(f"nothing delivered to {address}")


class Receiver:
    """An HTTP endpoint on loopback recording every request; `statuses` are
    answered in turn (then 200), `delay` seconds pass before each answer."""

    def __init__(self, statuses=(), delay=0.0, on_request=None):
        self.requests = []
        self.statuses = list(statuses)
        self.delay = delay
        self.on_request = on_request
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append((self.path, dict(self.headers), body.decode(), status))
                extra = {}
                if receiver.on_request:
                    extra = receiver.on_request(self.path, self.headers, body) or {}
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self):
        with self.lock:
            return [r for r in self.requests if 200 <= r[3] < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mx():
    handler = RecordingMX()
    controller = Controller(handler, hostname=MX_IP, port=25)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def dns_port():
    with dnsmasq("--mx-host=webhook.test,mx.webhook.test,10", f"--host-record=mx.webhook.test,{MX_IP}",
                 "--host-record=private.webhook.test,10.0.0.1", "--host-record=loop.webhook.test,127.0.0.1") as port:
        yield port


def configure(server, dns_port, **webhooks):
    server.config["dns"] = {"servers": [f"127.0.0.1:{dns_port}"], "timeoutMilliseconds": 1000}
    server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True, "minimumBackoffSeconds": 1,
                                 "maximumBackoffSeconds": 1}
    settings = {"allowNonPublicAddresses": True, "allowPlainHttp": True, "batchAgeMilliseconds": 100,
                "minimumBackoffSeconds": 1, "maximumBackoffSeconds": 2}
    settings.update(webhooks)
    server.config["webhooks"] = settings
    server.config["tracking"] = {"machineWindowSeconds": 0}


@pytest.fixture
def api(make_server, dns_port, mx):
    server = make_server(start=False)
    configure(server, dns_port)
    server.create_account("acme", ["acme.example"])
    server.token, server.access_key, server.secret = server.api_key("acme", "admin")
    return server.start()


def call(server, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.api_url + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + (token or server.token))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def native_events(receiver, secret):
    """Every event the receiver accepted, each request verified with the standardwebhooks library."""
    verifier = Webhook(secret)
    events = []
    for _, headers, body, _ in receiver.accepted():
        lowered = {k.lower(): v for k, v in headers.items()}
        payload = verifier.verify(body, lowered)
        assert payload["type"] == "events"
        events += payload["data"]["events"]
    return events


def send_native(server, to, **extra):
    body = {"from": "news@acme.example", "to": to, "subject": "hello", "text": "hi", "tags": ["welcome"],
            "custom_args": {"user_id": "42"}}
    body.update(extra)
    status, response = call(server, "POST", "/v1/messages", body)
    assert status == 202, response
    return response


def test_native_webhook_signed_batches_in_log_order(api, mx):
    receiver = Receiver()
    status, created = call(api, "POST", "/v1/webhooks", {"url": receiver.url, "format": "native"})
    assert status == 201, created
    assert created["secret"].startswith("whsec_")
    # The secret is shown once: never in a read.
    status, listed = call(api, "GET", "/v1/webhooks")
    assert status == 200 and "secret" not in json.dumps(listed)

    send_native(api, ["ok1@webhook.test"])
    send_native(api, ["bad1@webhook.test"])
    send_native(api, ["slow1@webhook.test"])
    wanted = {("ok1@webhook.test", "delivered"), ("bad1@webhook.test", "bounced"), ("slow1@webhook.test", "deferred")}
    events = wait_for(lambda: (lambda e: e if wanted <= {(x["recipient"], x["type"]) for x in e} else None)(
        native_events(receiver, created["secret"])), what="native events")
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "each event once, with its own id"
    for recipient, final in wanted:
        types = [e["type"] for e in events if e["recipient"] == recipient]
        assert types[0] == "accepted" and final in types[1:], types
    deferred = next(e for e in events if e["type"] == "deferred")
    assert deferred["reply"]["code"] == 451 and deferred["hard"] is False and deferred["attempt"] == 1
    bounce = next(e for e in events if e["type"] == "bounced")
    assert bounce["reply"]["code"] == 550 and bounce["reply"]["enhanced_code"] == "5.1.1"
    assert bounce["category"] and bounce["hard"] is True
    delivered = next(e for e in events if e["type"] == "delivered")
    assert delivered["tags"] == ["welcome"] and delivered["custom_args"] == {"user_id": "42"}
    assert delivered["sender"] == "news@acme.example" and delivered["mx_host"]

    # An altered body does not verify.
    _, headers, body, _ = receiver.accepted()[0]
    with pytest.raises(Exception):
        Webhook(created["secret"]).verify(body.replace("accepted", "delivered"), {k.lower(): v for k, v in headers.items()})

    status, deliveries = call(api, "GET", f"/v1/webhooks/{created['id']}/deliveries")
    assert status == 200 and deliveries["deliveries"] and all(d["succeeded"] for d in deliveries["deliveries"])

    # A replay sends the past again, with the same ids.
    before = len(receiver.accepted())
    status, replay = call(api, "POST", f"/v1/webhooks/{created['id']}/replay", {"since": int(time.time()) - 3600})
    assert status == 202, replay
    wait_for(lambda: len(receiver.accepted()) > before, what="the replay")
    replayed = native_events(receiver, created["secret"])
    assert set(ids) <= {e["id"] for e in replayed}

    # The test button sends one sample.
    status, attempt = call(api, "POST", f"/v1/webhooks/{created['id']}/test")
    assert status == 200 and attempt["succeeded"] and attempt["test"], attempt

    # Another account cannot see or touch the endpoint.
    api.create_account("other", ["other.example"])
    other_token = api.api_key("other", "admin")[0]
    assert call(api, "GET", f"/v1/webhooks/{created['id']}", token=other_token)[0] == 404
    assert call(api, "DELETE", f"/v1/webhooks/{created['id']}", token=other_token)[0] == 404
    assert call(api, "DELETE", f"/v1/webhooks/{created['id']}")[0] == 204
    receiver.close()


def test_sendgrid_event_webhook_verified_with_the_sdk(api, mx):
    receiver = Receiver()
    status, settings = call(api, "PATCH", "/v3/user/webhooks/event/settings",
                            {"enabled": True, "url": receiver.url, "processed": True, "delivered": True, "bounce": True})
    assert status == 200 and settings["delivered"] and not settings["open"], settings
    status, signed = call(api, "GET", "/v3/user/webhooks/event/settings/signed")
    assert status == 200 and signed["public_key"]

    client = sendgrid.SendGridAPIClient(api_key=api.token, host=api.api_url)
    response = client.client.mail.send.post(request_body={
        "personalizations": [{"to": [{"email": "ok2@webhook.test"}], "custom_args": {"order": "A-1"}}],
        "from": {"email": "news@acme.example"}, "subject": "sg", "content": [{"type": "text/plain", "value": "x"}],
        "categories": ["receipt"]})
    assert response.status_code == 202

    verifier = EventWebhook()
    key = verifier.convert_public_key_to_ecdsa(signed["public_key"])

    def events():
        found = []
        for _, headers, body, _ in receiver.accepted():
            lowered = {k.lower(): v for k, v in headers.items()}
            assert verifier.verify_signature(body, lowered["x-twilio-email-event-webhook-signature"],
                                             lowered["x-twilio-email-event-webhook-timestamp"], key)
            found += json.loads(body)
        return found if {"processed", "delivered"} <= {e["event"] for e in found} else None

    found = wait_for(events, what="SendGrid events")
    delivered = next(e for e in found if e["event"] == "delivered")
    assert delivered["email"] == "ok2@webhook.test" and delivered["order"] == "A-1"
    assert delivered["category"] == ["receipt"] and delivered["sg_event_id"] and delivered["sg_message_id"]
    assert delivered["response"].startswith("250")
    # A body changed after signing does not verify.
    _, headers, body, _ = receiver.accepted()[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert not verifier.verify_signature(body.replace("ok2", "ok3"), lowered["x-twilio-email-event-webhook-signature"],
                                         lowered["x-twilio-email-event-webhook-timestamp"], key)
    receiver.close()


def verify_sns(message, api):
    """Checks an SNS message as an SNS validator does, trusting only Hikyaku's certificate URL."""
    assert message["SignatureVersion"] == "2"
    assert message["SigningCertURL"] == api.api_url + "/sns/certificate.pem"
    with urllib.request.urlopen(message["SigningCertURL"], timeout=10) as response:
        certificate = x509.load_pem_x509_certificate(response.read())
    if message["Type"] == "Notification":
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
    certificate.public_key().verify(base64.b64decode(message["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_ses_configuration_set_events_as_sns_notifications(api, mx):
    def confirm(path, headers, body):
        message = json.loads(body)
        verify_sns(message, api)
        if message["Type"] == "SubscriptionConfirmation":
            threading.Thread(target=lambda: urllib.request.urlopen(message["SubscribeURL"], timeout=10).read()).start()

    receiver = Receiver(on_request=confirm)
    status, created = call(api, "POST", "/v1/webhooks", {"url": receiver.url, "format": "ses", "name": "ses-events"})
    assert status == 201, created
    topic = created["topic_arn"]
    wait_for(lambda: call(api, "GET", f"/v1/webhooks/{created['id']}")[1]["confirmed"], what="the subscription confirmation")

    client = boto3.client("sesv2", endpoint_url=api.api_url, region_name="ap-northeast-1",
                          aws_access_key_id=api.access_key, aws_secret_access_key=api.secret)
    client.create_configuration_set(ConfigurationSetName="transactional")
    client.create_configuration_set_event_destination(
        ConfigurationSetName="transactional", EventDestinationName="to-sns",
        EventDestination={"Enabled": True, "MatchingEventTypes": ["SEND", "DELIVERY", "BOUNCE"], "SnsDestination": {"TopicArn": topic}})
    destinations = client.get_configuration_set_event_destinations(ConfigurationSetName="transactional")["EventDestinations"]
    assert destinations[0]["SnsDestination"]["TopicArn"] == topic and destinations[0]["Enabled"]
    with pytest.raises(client.exceptions.NotFoundException):
        client.send_email(FromEmailAddress="news@acme.example", Destination={"ToAddresses": ["ok4@webhook.test"]},
                          Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
                          ConfigurationSetName="missing")
    message_id = client.send_email(FromEmailAddress="news@acme.example", Destination={"ToAddresses": ["ok4@webhook.test"]},
                                   Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
                                   ConfigurationSetName="transactional")["MessageId"]

    def notifications():
        found = [json.loads(body) for _, _, body, _ in receiver.accepted()]
        events = [json.loads(m["Message"]) for m in found if m["Type"] == "Notification"]
        return events if {"Send", "Delivery"} <= {e["eventType"] for e in events} else None

    try:
        events = wait_for(notifications, what="SES events")
    except AssertionError:
        print(call(api, "GET", f"/v1/webhooks/{created['id']}/deliveries"))
        print(receiver.requests[-3:])
        raise
    delivery = next(e for e in events if e["eventType"] == "Delivery")
    assert delivery["mail"]["messageId"] == message_id
    assert delivery["mail"]["tags"]["ses:configuration-set"] == ["transactional"]
    assert delivery["delivery"]["recipients"] == ["ok4@webhook.test"]
    assert [e["eventType"] for e in events].index("Send") < [e["eventType"] for e in events].index("Delivery")

    client.delete_configuration_set_event_destination(ConfigurationSetName="transactional", EventDestinationName="to-sns")
    assert client.get_configuration_set_event_destinations(ConfigurationSetName="transactional")["EventDestinations"] == []
    client.delete_configuration_set(ConfigurationSetName="transactional")
    receiver.close()


def test_a_failing_receiver_is_retried_then_disabled(make_server, dns_port, mx):
    server = make_server(start=False)
    configure(server, dns_port, disableAfterSeconds=3)
    server.create_account("acme", ["acme.example"])
    server.token = server.api_key("acme", "admin")[0]
    server.start()
    receiver = Receiver(statuses=[500])
    status, created = call(server, "POST", "/v1/webhooks", {"url": receiver.url, "events": ["accepted"]})
    assert status == 201
    send_native(server, ["ok5@webhook.test"])
    wait_for(lambda: native_events(receiver, created["secret"]), what="the retried request")
    assert receiver.requests[0][3] == 500
    assert receiver.requests[0][1]["webhook-id"] == receiver.accepted()[0][1]["webhook-id"], "a retry keeps its id"
    _, deliveries = call(server, "GET", f"/v1/webhooks/{created['id']}/deliveries")
    assert [d["status"] for d in deliveries["deliveries"]][-1] == 500

    # A receiver that is gone: retried with backoff, then disabled after webhooks.disableAfterSeconds, visibly.
    receiver.close()
    send_native(server, ["ok6@webhook.test"])
    state = wait_for(lambda: (lambda w: w if not w["enabled"] else None)(call(server, "GET", f"/v1/webhooks/{created['id']}")[1]),
                     timeout=40, what="the endpoint to be disabled")
    assert "disabled after failing" in state["disabled_reason"]
    assert "webhook endpoint disabled" in server.log()


def test_ssrf_guard_refuses_private_and_metadata_addresses(make_server, dns_port, mx):
    server = make_server(start=False)
    configure(server, dns_port, allowNonPublicAddresses=False)
    server.create_account("acme", ["acme.example"])
    server.token = server.api_key("acme", "admin")[0]
    server.start()
    for url in ["http://127.0.0.1:9/x", "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data",
                "http://[fd00:ec2::254]/", "http://10.1.2.3/", "http://100.64.0.1/"]:
        status, body = call(server, "POST", "/v1/webhooks", {"url": url})
        assert status == 400 and body["error"]["code"] == "forbidden_address", (url, body)
    assert call(server, "POST", "/v1/webhooks", {"url": "ftp://example.com/"})[0] == 400
    assert call(server, "POST", "/v1/webhooks", {"url": "http://user:pw@example.com/"})[0] == 400
    # Names are resolved at each request and every answer is checked.
    for name in ["private.webhook.test", "loop.webhook.test"]:
        status, created = call(server, "POST", "/v1/webhooks", {"url": f"http://{name}:9/x"})
        assert status == 201, created
        status, attempt = call(server, "POST", f"/v1/webhooks/{created['id']}/test")
        assert not attempt["succeeded"] and "not a public address" in attempt["error"], attempt


def test_a_redirect_is_not_followed(api):
    target = Receiver()
    redirector = Receiver(statuses=[302] * 10, on_request=lambda *_: {"Location": target.url})
    status, created = call(api, "POST", "/v1/webhooks", {"url": redirector.url})
    status, attempt = call(api, "POST", f"/v1/webhooks/{created['id']}/test")
    assert attempt["status"] == 302 and not attempt["succeeded"] and "redirect" in attempt["error"]
    assert target.requests == []
    target.close()
    redirector.close()


def fetch(url, agent, method="GET"):
    request = urllib.request.Request(url, method=method, headers={"User-Agent": agent})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def test_open_and_click_tracking(api, mx):
    receiver = Receiver()
    status, created = call(api, "POST", "/v1/webhooks", {"url": receiver.url, "format": "sendgrid", "events": ["opened", "clicked"]})
    html = ('<html><body><p>Hi</p><a href="https://shop.example/item?a=1&amp;b=2">buy</a> '
            '<a clicktracking="off" href="https://shop.example/private">no</a> <a href="mailto:help@acme.example">mail</a> '
            '<a href="#top">top</a></body></html>')
    send_native(api, ["ok7@webhook.test"], html=html, tracking={"opens": True, "clicks": True})
    message = mx.for_recipient("ok7@webhook.test")
    body = message.get_body(("html",)).get_content()
    assert "https://shop.example/private" in body and "mailto:help@acme.example" in body and 'href="#top"' in body
    assert "https://shop.example/item" not in body, "the tracked link is rewritten"
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', body).group(1)
    link = re.search(r'href="([^"]+/t/c/[^"]+)"', body).group(1).replace("&amp;", "&")

    assert fetch(pixel, BROWSER)[0] == 200
    status, headers, _ = fetch(link, BROWSER)
    assert status == 302 and headers["Location"] == "https://shop.example/item?a=1&b=2"
    # Apple's privacy proxy: a bare agent; a scanner's HEAD.
    assert fetch(pixel, "Mozilla/5.0")[0] == 200
    assert fetch(link, BROWSER, method="HEAD")[0] == 302
    # Any byte changed in a token: 404, and no redirect anywhere.
    token = link.rsplit("/", 1)[1]
    altered = link[: -len(token)] + token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    status, headers, _ = fetch(altered, BROWSER)
    assert status == 404 and "Location" not in headers
    assert fetch(pixel.replace("/t/o/", "/t/c/"), BROWSER)[0] == 404

    def engagement():
        _, stats = call(api, "GET", "/v1/stats")
        e = stats["engagement"]
        return e if e["opened"]["human_total"] == 1 and e["opened"]["machine_total"] == 1 and e["clicked"]["human_total"] == 1 \
            and e["clicked"]["machine_total"] == 1 else None

    counts = wait_for(engagement, what="engagement counts")
    assert counts["opened"]["human_unique"] == 1
    events = wait_for(lambda: (lambda found: found if len(found) >= 4 else None)(
        [e for _, _, b, _ in receiver.accepted() for e in json.loads(b)]), what="open and click webhooks")
    opens = [e for e in events if e["event"] == "open"]
    assert sorted(e["sg_machine_open"] for e in opens) == [False, True]
    clicks = [e for e in events if e["event"] == "click"]
    assert {e["url"] for e in clicks} == {"https://shop.example/item?a=1&b=2"}
    assert all(e["useragent"] for e in events)
    receiver.close()


def test_sigkill_with_10000_events_pending_loses_none(make_server, dns_port, mx):
    server = make_server(start=False)
    configure(server, dns_port, batchSize=200)
    server.config["delivery"]["enabled"] = False
    server.create_account("acme", ["acme.example"])
    server.token = server.api_key("acme", "admin")[0]
    server.start()
    receiver = Receiver(delay=0.05)
    status, created = call(server, "POST", "/v1/webhooks", {"url": receiver.url, "events": ["accepted"]})
    assert status == 201
    for batch in range(10):
        recipients = [{"to": [f"r{batch}-{i}@webhook.test"]} for i in range(1000)]
        status, _ = call(server, "POST", "/v1/messages", {"from": "news@acme.example", "subject": "s", "text": "t",
                                                          "recipients": recipients})
        assert status == 202
    wait_for(lambda: len(receiver.accepted()) >= 5, what="the first batches")
    server.kill()
    server.start()

    def received():
        ids = [e["id"] for e in native_events(receiver, created["secret"])]
        return ids if len(set(ids)) >= 10000 else None

    ids = wait_for(received, timeout=180, what="all 10,000 events after the restart")
    duplicates = len(ids) - len(set(ids))
    print(f"10,000 events, SIGKILL mid-way: {len(set(ids))} distinct received, {duplicates} duplicates")
    assert len(set(ids)) == 10000
    assert duplicates <= 1000, "at most the batches in flight are sent twice"
    receiver.close()


def test_tracking_urls_survive_garbage(api):
    """Strangers reach /t/: whatever the path, the server answers 404 and stays up."""
    import socket
    for path in ["/t/o/" + "A" * 5000, "/t/c/%FF%FE%00", "/t/o/..%2F..%2Fetc%2Fpasswd", "/t/c/" + "日本" * 100,
                 "/t/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/t/c/-_-_", "/t/o/"]:
        with socket.create_connection(("127.0.0.1", api.api_port), timeout=10) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = s.recv(200)
            assert reply.startswith(b"HTTP/1.1 404") or reply.startswith(b"HTTP/1.1 400"), (path, reply)
    assert fetch(api.api_url + "/t/o/AAAA", BROWSER)[0] == 404
    assert call(api, "GET", "/v1/account")[0] == 200


def self_signed_https_receiver(tmp_path):
    """An HTTPS receiver on loopback with a certificate nobody trusts."""
    import datetime
    import ssl
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
                   .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    return receiver


def test_https_certificates_are_verified(make_server, dns_port, mx, tmp_path):
    server = make_server(start=False)
    configure(server, dns_port, allowPlainHttp=False)
    server.create_account("acme", ["acme.example"])
    server.token = server.api_key("acme", "admin")[0]
    server.start()
    status, body = call(server, "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x"})
    assert status == 400 and body["error"]["code"] == "insecure_url"
    receiver = self_signed_https_receiver(tmp_path)
    status, created = call(server, "POST", "/v1/webhooks", {"url": f"https://127.0.0.1:{receiver.port}/hook"})
    assert status == 201, created
    status, attempt = call(server, "POST", f"/v1/webhooks/{created['id']}/test")
    assert not attempt["succeeded"] and attempt["status"] is None, attempt
    assert receiver.requests == [], "nothing is sent to a server whose certificate does not verify"
    receiver.close()


"""What the console's interop tests share: the recording MX, an account set-up
with users of every role, and a requests session that logs in as a browser does."""
import contextlib
import re
import time

import requests
from aiosmtpd.controller import Controller

from conftest import dnsmasq


class RecordingMX:
    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("xss"):
            return "550 5.1.1 <b onmouseover=alert(1)>gone</b><script>alert(2)</script>"
        if address.startswith("bad"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        for recipient in envelope.rcpt_tos:
            self.messages.append((recipient, envelope.original_content))
        return "250 2.0.0 accepted by the console test MX"

    def count(self, address):
        return sum(1 for recipient, _ in self.messages if recipient == address)


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def recording_mx(ip):
    """A RecordingMX listening on ip:25 (each test file has an address of its own)."""
    handler = RecordingMX()
    controller = Controller(handler, hostname=ip, port=25)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@contextlib.contextmanager
def console_server(make_server, mx_ip, **config):
    """A delivering server with accounts acme (domain acme.test, DKIM record published) and other,
    an operator, an acme admin, an acme member and an other member; console.test's MX is mx_ip."""
    server = make_server(start=False)
    server.create_account("acme", ["acme.test"])
    server.create_account("other", ["other.test"])
    server.cli("domain", "add", "acme.test", "--account", "acme")
    dkim = [r for r in server.cli_json("domain", "records", "acme.test") if "_domainkey" in r["name"]][0]
    users = {}
    for email_address, role, account in [("ops@hikyaku.test", "operator", None), ("admin@acme.test", "admin", "acme"),
                                         ("member@acme.test", "member", "acme"), ("member@other.test", "member", "other")]:
        args = ["user", "create", email_address, "--role", role] + (["--account", account] if account else [])
        users[email_address] = server.cli_json(*args)["password"]
    server.users = users
    with dnsmasq("--mx-host=console.test,mx.console.test,10", f"--host-record=mx.console.test,{mx_ip}",
                 f"--txt-record={dkim['name']},{dkim['value']}") as port:
        server.config["dns"] = {"servers": [f"127.0.0.1:{port}"], "timeoutMilliseconds": 1000}
        server.config["delivery"] = {"enabled": True, "allowNonPublicAddresses": True, "minimumBackoffSeconds": 1,
                                     "maximumBackoffSeconds": 1}
        server.config["console"] = {"maxLoginFailures": 3}
        server.config.update(config)
        server.token = server.api_key("acme", "admin")[0]
        server.other_token = server.api_key("other", "admin")[0]
        server.start()
        yield server


def api(server, method, path, body=None, token=None):
    response = requests.request(method, server.api_url + path, json=body, timeout=30,
                                headers={"Authorization": "Bearer " + (token or server.token)})
    try:
        return response.status_code, response.json() if response.content else None
    except ValueError:
        return response.status_code, response.text


def send(server, to, subject="hello", token=None):
    status, body = api(server, "POST", "/v1/messages", {"from": "news@acme.test", "to": to, "subject": subject, "text": "hi"},
                       token=token)
    assert status == 202, body
    return body["id"]


def delivered(server, message_id):
    status, body = api(server, "GET", f"/v1/messages/{message_id}")
    return status == 200 and all(r["state"] in ("delivered", "bounced") for r in body["recipients"])


class Browser:
    """A requests session that logs in through the form, as a browser would."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self.verify = True

    def url(self, path):
        return self.server.api_url + path

    def login(self, email_address, password, expect=303):
        page = self.session.get(self.url("/console/login"), timeout=10, verify=self.verify)
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        response = self.session.post(self.url("/console/login"), data={"login_token": token, "email": email_address,
                                                                        "password": password, "next": "/console/"},
                                     allow_redirects=False, timeout=30, verify=self.verify)
        assert response.status_code == expect, response.text[:500]
        return response

    def get(self, path, **kwargs):
        return self.session.get(self.url(path), allow_redirects=False, timeout=30, verify=self.verify, **kwargs)

    def csrf(self):
        return re.search(r'name="csrf" value="([^"]+)"', self.get("/console/settings").text).group(1)

    def post(self, path, data, with_csrf=True):
        if with_csrf:
            data = dict(data, csrf=self.csrf())
        return self.session.post(self.url(path), data=data, allow_redirects=False, timeout=30, verify=self.verify)

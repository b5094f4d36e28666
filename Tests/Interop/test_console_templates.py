"""Templates (SendGrid's dynamic templates through the official SDK, and the
console's editor with its preview and test send), suppression import and
export, log search by sender, subject and provider, the queue's delivery
sites and the webhooks page; real mail through an aiosmtpd MX behind dnsmasq."""
import email
import email.policy
import html
import json
import re
import time

import pytest
import requests

from console_support import Browser, api, console_server, delivered, recording_mx, wait_for

MX_IP = "127.0.0.36"


@pytest.fixture(scope="module")
def mx():
    with recording_mx(MX_IP) as handler:
        yield handler


@pytest.fixture
def console(make_server, mx):
    with console_server(make_server, MX_IP, webhooks={"allowNonPublicAddresses": True, "allowPlainHttp": True}) as server:
        yield server


def received(mx, address, timeout=30):
    found = wait_for(lambda: [content for recipient, content in mx.messages if recipient == address], timeout=timeout,
                     what=f"delivery to {address}")
    return email.message_from_bytes(found[-1], policy=email.policy.default)


def body_text(message):
    part = message.get_body(preferencelist=("plain", "html"))
    return part.get_content()


def test_sendgrid_dynamic_templates_through_the_sdk(console, mx):
    import python_http_client
    import sendgrid
    client = sendgrid.SendGridAPIClient(api_key=console.token, host=console.api_url)
    response = client.client.templates.post(request_body={"name": "Welcome mail", "generation": "dynamic"})
    assert response.status_code == 201
    template = json.loads(response.body)
    assert re.fullmatch(r"d-[0-9a-f]{32}", template["id"]) and template["versions"] == []
    template_id = template["id"]
    # A template without an active version cannot send.
    mail = {"personalizations": [{"to": [{"email": "dyn1@console.test"}], "dynamic_template_data": {"name": "山田", "vip": True}}],
            "from": {"email": "news@acme.test"}, "template_id": template_id}
    with pytest.raises(python_http_client.exceptions.BadRequestsError):
        client.client.mail.send.post(request_body=mail)

    versions = client.client.templates._(template_id).versions
    first = json.loads(versions.post(request_body={
        "name": "v1", "subject": "こんにちは {{name}} 様", "active": 0,
        "html_content": "<p>{{#if vip}}VIP {{else}}Regular {{/if}}{{name}}</p>",
        "plain_content": "{{#if vip}}VIP {{else}}Regular {{/if}}{{name}}\n{{#each items}}- {{this}}\n{{/each}}",
        "test_data": json.dumps({"name": "Sample"})}).body)
    assert first["active"] == 1, "a template's first version is its active one"
    assert first["template_id"] == template_id and first["subject"] == "こんにちは {{name}} 様"
    listed = json.loads(client.client.templates.get(query_params={"generations": "dynamic", "page_size": 18}).body)
    assert [t["id"] for t in listed["result"]] == [template_id] and listed["result"][0]["name"] == "Welcome mail"
    assert json.loads(client.client.templates.get().body)["result"] == [], "legacy templates are the default listing"

    mail["personalizations"][0]["dynamic_template_data"]["items"] = ["りんご", "みかん"]
    assert client.client.mail.send.post(request_body=mail).status_code == 202
    message = received(mx, "dyn1@console.test")
    assert str(message["Subject"]) == "こんにちは 山田 様"
    assert "VIP 山田\n- りんご\n- みかん" in body_text(message).replace("\r\n", "\n")

    # A second, active version takes over; activating the first brings it back.
    second = json.loads(versions.post(request_body={"name": "v2", "subject": "Second {{name}}", "active": 1,
                                                    "plain_content": "two {{name}}"}).body)
    got = json.loads(client.client.templates._(template_id).get().body)
    assert {v["id"]: v["active"] for v in got["versions"]} == {first["id"]: 0, second["id"]: 1}
    mail["personalizations"][0]["to"] = [{"email": "dyn2@console.test"}]
    mail["personalizations"][0]["dynamic_template_data"] = {"name": "B"}
    client.client.mail.send.post(request_body=mail)
    assert str(received(mx, "dyn2@console.test")["Subject"]) == "Second B"
    activated = json.loads(versions._(first["id"]).activate.post().body)
    assert activated["active"] == 1
    patched = json.loads(versions._(first["id"]).patch(request_body={"subject": "Patched {{name}}"}).body)
    assert patched["subject"] == "Patched {{name}}" and patched["active"] == 1
    mail["personalizations"][0]["to"] = [{"email": "dyn3@console.test"}]
    client.client.mail.send.post(request_body=mail)
    assert str(received(mx, "dyn3@console.test")["Subject"]) == "Patched B"
    renamed = json.loads(client.client.templates._(template_id).patch(request_body={"name": "Renamed"}).body)
    assert renamed["name"] == "Renamed"

    # Another account sees none of it and cannot send with it.
    other = sendgrid.SendGridAPIClient(api_key=console.other_token, host=console.api_url)
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        other.client.templates._(template_id).get()
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        other.client.templates._(template_id).versions._(first["id"]).get()
    other_mail = dict(mail, **{"from": {"email": "news@other.test"}})
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        other.client.mail.send.post(request_body=other_mail)
    # The native API does not overwrite what versions manage.
    status, body = api(console, "PUT", f"/v1/templates/{template_id}", {"subject": "x", "text": "y"})
    assert status == 409 and body["error"]["code"] == "dynamic_template", body
    # Helpers Mustache cannot express are refused when saved, with their name.
    with pytest.raises(python_http_client.exceptions.BadRequestsError) as refused:
        versions.post(request_body={"name": "v3", "subject": "s", "plain_content": "{{#if (eq a b)}}x{{/if}}"})
    assert "is not supported" in refused.value.body.decode()
    assert versions._(second["id"]).delete().status_code == 204
    assert client.client.templates._(template_id).delete().status_code == 204
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        client.client.mail.send.post(request_body=mail)


def test_suppression_import_and_export_through_the_api(console):
    headers = {"Authorization": "Bearer " + console.token, "Content-Type": "text/csv"}
    csv_text = ('\ufeffaddress,reason,scope\r\n'
                'one@example.jp,bounce,all\r\n'
                'not an address,manual,all\r\n'
                'two@example.jp,angry,all\r\n'
                '"three@example.jp",complaint,marketing\r\n'
                'FOUR@Example.jp,,\r\n')
    response = requests.post(console.api_url + "/v1/suppressions/import", data=csv_text.encode(), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["imported"] == 3
    assert [e["line"] for e in result["errors"]] == [3, 4], result
    status, three = api(console, "GET", "/v1/suppressions/three@example.jp")
    assert status == 200 and three["reason"] == "complaint" and three["scope"] == "marketing"
    assert api(console, "GET", "/v1/suppressions/four@example.jp")[1]["reason"] == "manual"
    exported = requests.get(console.api_url + "/v1/suppressions/export", headers=headers, timeout=30)
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "address,reason,scope,created_at,source" and len(lines) == 4
    # The export imports unchanged into another account, and that account's list is its own.
    other = dict(headers, Authorization="Bearer " + console.other_token)
    again = requests.post(console.api_url + "/v1/suppressions/import", data=exported.content, headers=other, timeout=30).json()
    assert again == {"imported": 3, "errors": []}
    assert api(console, "GET", "/v1/suppressions/one@example.jp", token=console.other_token)[0] == 200
    assert requests.post(console.api_url + "/v1/suppressions/import", data=b"\xff\xfe", headers=headers, timeout=30).status_code == 400
    # A member's key that only reads cannot import.
    reader = api(console, "POST", "/v1/api-keys", {"scope": "read"})[1]["token"]
    refused = requests.post(console.api_url + "/v1/suppressions/import", data=b"x@example.jp",
                            headers=dict(headers, Authorization="Bearer " + reader), timeout=30)
    assert refused.status_code == 403


def test_log_search_by_sender_subject_and_provider(console, mx):
    ids = []
    for sender, subject, to in [("billing@acme.test", "請求書 12月分", "search1@console.test"),
                                ("news@acme.test", "News 100% off_sale", "search2@console.test")]:
        status, body = api(console, "POST", "/v1/messages", {"from": sender, "to": to, "subject": subject, "text": "hi"})
        assert status == 202, body
        ids.append(body["id"])
    for message_id in ids:
        wait_for(lambda: delivered(console, message_id), what="delivery")

    def found(query):
        status, body = api(console, "GET", "/v1/events?" + query)
        assert status == 200, body
        return {event["message_id"] for event in body["events"]}

    assert found("subject=請求書") == {ids[0]}
    assert found("subject=100%25 off_") == {ids[1]}, "LIKE's % and _ are letters in a search"
    assert found("subject=100%25x") == set()
    assert found("sender=BILLING@acme.test") == {ids[0]}
    by_provider = found("provider=mx:mx.console.test&status=delivered")
    assert set(ids) <= by_provider
    assert found("provider=gmail") == set()
    # Another account's search never finds these.
    status, body = api(console, "GET", "/v1/events?subject=請求書", token=console.other_token)
    assert status == 200 and body["events"] == []

    browser = Browser(console)
    browser.login("member@acme.test", console.users["member@acme.test"])
    page = browser.get("/console/log", params={"subject": "請求書", "status": "delivered"})
    assert page.status_code == 200 and ids[0] in page.text and ids[1] not in page.text
    page = browser.get("/console/log", params={"sender": "news@acme.test", "provider": "mx:mx.console.test"})
    assert ids[1] in page.text and ids[0] not in page.text
    assert '<option value="docomo">' in page.text, "known providers are offered"
    csv_text = browser.get("/console/log.csv", params={"subject": "請求書"}).text
    assert ids[0] in csv_text and ids[1] not in csv_text

    # The queue page shows the delivery site this mail went through, with its connections and limits, to the operator;
    # an account sees only named providers' sites (an MX set would tell it where other tenants send).
    assert "mx:mx.console.test" not in browser.get("/console/queue").text
    operator = Browser(console)
    operator.login("ops@hikyaku.test", console.users["ops@hikyaku.test"])
    queue = operator.get("/console/queue").text
    assert 'id="delivery-sites"' in queue and "mx:mx.console.test" in queue


def test_console_template_editor_preview_and_test_send(console, mx):
    admin = Browser(console)
    admin.login("admin@acme.test", console.users["admin@acme.test"])
    created = admin.post("/console/templates", {"name": "welcome", "subject": "Welcome {{name}}",
                                                 "text": "Hello {{name}}", "html": "<p>Hello {{name}}</p>"})
    assert created.status_code == 303 and created.headers["Location"] == "/console/templates/welcome"
    assert admin.post("/console/templates", {"name": "welcome", "subject": "x", "text": "y"}).status_code == 409
    assert admin.post("/console/templates", {"name": "bad name!", "subject": "x", "text": "y"}).status_code == 400
    listing = admin.get("/console/templates").text
    assert 'href="/console/templates/welcome"' in listing

    payload = "<script>alert(1)</script>"
    form = {"subject": "Welcome {{name}}", "text": "Hello {{name}}", "html": "<p>Hello {{name}}</p>",
            "data": json.dumps({"name": payload}), "action": "preview"}
    preview = admin.post("/console/templates/welcome", form)
    assert preview.status_code == 200
    assert payload not in preview.text, "a value from sample data is never markup on the page"
    assert html.escape(f"Welcome {payload}", quote=False) in preview.text
    assert 'sandbox=""' in preview.text and 'id="preview-frame"' in preview.text
    # The preview did not save anything.
    assert api(console, "GET", "/v1/templates/welcome")[1]["subject"] == "Welcome {{name}}"
    broken = admin.post("/console/templates/welcome", dict(form, data="{not json"))
    assert broken.status_code == 200 and 'id="preview-error"' in broken.text

    saved = admin.post("/console/templates/welcome", dict(form, subject="Hi {{name}}!", action="save"))
    assert saved.status_code == 303
    assert api(console, "GET", "/v1/templates/welcome")[1]["subject"] == "Hi {{name}}!"

    member = Browser(console)
    member.login("member@acme.test", console.users["member@acme.test"])
    assert member.post("/console/templates/welcome", dict(form, action="save")).status_code == 403
    assert member.post("/console/templates", {"name": "x", "subject": "x", "text": "y"}).status_code == 403
    # A member sends tests to their own address or within the account's domains; an admin anywhere.
    test = dict(form, data=json.dumps({"name": "Tanaka"}), action="test", **{"from": "qa@acme.test"})
    assert member.post("/console/templates/welcome", dict(test, to="tester@console.test")).status_code == 403
    assert member.post("/console/templates/welcome", dict(test, to="member@acme.test")).status_code == 303
    sent = admin.post("/console/templates/welcome", dict(test, to="tester@console.test"))
    assert sent.status_code == 303 and sent.headers["Location"].startswith("/console/messages/")
    message = received(mx, "tester@console.test")
    assert str(message["Subject"]) == "Welcome Tanaka" and str(message["From"]) == "qa@acme.test"
    # A test send follows the sender policy like every door: a foreign domain is refused.
    foreign = admin.post("/console/templates/welcome", dict(test, to="tester@console.test", **{"from": "someone@gmail.com"}))
    assert foreign.status_code in (400, 403) and "gmail.com" in foreign.text

    outsider = Browser(console)
    outsider.login("member@other.test", console.users["member@other.test"])
    assert outsider.get("/console/templates/welcome").status_code == 404
    assert outsider.post("/console/templates/welcome", dict(form, action="preview")).status_code == 404


def test_console_webhooks_page_and_replay(console):
    status, endpoint = api(console, "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hooks", "format": "native",
                                                             "name": "crm"})
    assert status == 201, endpoint
    admin = Browser(console)
    admin.login("admin@acme.test", console.users["admin@acme.test"])
    page = admin.get("/console/webhooks")
    assert page.status_code == 200 and "http://127.0.0.1:9/hooks" in page.text and 'href="/console/webhooks"' in page.text
    replay = admin.post("/console/webhooks/replay", {"id": endpoint["id"], "since": "2026-01-01T00:00"})
    assert replay.status_code == 303 and replay.headers["Location"] == "/console/webhooks?replayed=1"
    assert admin.post("/console/webhooks/replay", {"id": endpoint["id"]}).status_code == 400
    member = Browser(console)
    member.login("member@acme.test", console.users["member@acme.test"])
    assert member.post("/console/webhooks/replay", {"id": endpoint["id"], "since": "2026-01-01T00:00"}).status_code == 403
    outsider = Browser(console)
    outsider.login("member@other.test", console.users["member@other.test"])
    assert "127.0.0.1:9/hooks" not in outsider.get("/console/webhooks").text


def test_the_console_on_a_listener_of_its_own(make_server):
    server = make_server(start=False)
    server.create_account("acme", ["acme.test"])
    password = server.cli_json("user", "create", "a@acme.test", "--role", "admin", "--account", "acme")["password"]
    server.config["console"] = {"listen": "127.0.0.1:0"}
    server.start()
    assert server.console_port and server.console_port != server.api_port
    # The API listener no longer serves the console; the API stays where it was.
    assert requests.get(server.api_url + "/console/login", timeout=10).status_code == 404
    assert requests.get(server.api_url + "/openapi.json", timeout=10).status_code == 200
    browser = Browser(server)
    browser.url = lambda path: f"http://127.0.0.1:{server.console_port}{path}"
    browser.login("a@acme.test", password)
    assert browser.get("/console/").status_code == 200
    assert requests.get(f"http://127.0.0.1:{server.console_port}/v1/account", timeout=10).status_code == 404


def test_sendgrid_unsubscribe_groups_and_suppression_writes(console, mx):
    import python_http_client
    import sendgrid
    client = sendgrid.SendGridAPIClient(api_key=console.token, host=console.api_url)
    news = json.loads(client.client.asm.groups.post(request_body={"name": "News", "description": "Weekly news",
                                                                  "is_default": True}).body)
    offers = json.loads(client.client.asm.groups.post(request_body={"name": "Offers", "description": "Sales"}).body)
    assert news["is_default"] is True and isinstance(news["id"], int)
    listed = json.loads(client.client.asm.groups.get().body)
    assert [g["name"] for g in listed] == ["News", "Offers"] and listed[0]["unsubscribes"] == 0
    # A time past any calendar is refused by name, as a time that is not a number is.
    for value in ("1e300", "nan", "inf", "-1e20", "soon"):
        response = requests.get(console.api_url + "/v3/suppression/bounces", params={"start_time": value}, timeout=10,
                                headers={"Authorization": "Bearer " + console.token})
        assert response.status_code == 400 and "start_time" in response.text, (value, response.text)
    response = requests.get(console.api_url + "/v3/suppression/bounces", params={"start_time": "0", "end_time": "4102444800"},
                            timeout=10, headers={"Authorization": "Bearer " + console.token})
    assert response.status_code == 200 and response.json() == []
    added = client.client.asm.groups._(news["id"]).suppressions.post(request_body={"recipient_emails": ["Left@console.test"]})
    assert added.status_code == 201 and json.loads(added.body) == {"recipient_emails": ["left@console.test"]}
    assert json.loads(client.client.asm.groups._(news["id"]).suppressions.get().body) == ["left@console.test"]
    per_address = json.loads(client.client.asm.suppressions._("left@console.test").get().body)["suppressions"]
    assert {g["name"]: g["suppressed"] for g in per_address} == {"News": True, "Offers": False}

    # Mail in the group the address left is not delivered to it; mail in another group is.
    def mail(to, group):
        return {"personalizations": [{"to": [{"email": to}]}], "from": {"email": "news@acme.test"}, "subject": f"group {group}",
                "content": [{"type": "text/plain", "value": "hi"}], "asm": {"group_id": group}}
    time.sleep(5.5)  # suppression changes reach delivery within 5 s (docs/api.md)
    response = client.client.mail.send.post(request_body=mail("left@console.test", news["id"]))
    left_id = response.headers["X-Message-Id"]
    wait_for(lambda: delivered(console, left_id) or api(console, "GET", f"/v1/messages/{left_id}")[1]["recipients"][0]["state"] == "suppressed",
             what="the group's decision")
    assert api(console, "GET", f"/v1/messages/{left_id}")[1]["recipients"][0]["state"] == "suppressed"
    client.client.mail.send.post(request_body=mail("left@console.test", offers["id"]))
    received(mx, "left@console.test")
    with pytest.raises(python_http_client.exceptions.BadRequestsError):
        client.client.mail.send.post(request_body=mail("left@console.test", 999999))
    # Another account can neither see nor use these groups.
    other = sendgrid.SendGridAPIClient(api_key=console.other_token, host=console.api_url)
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        other.client.asm.groups._(news["id"]).get()
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        other.client.asm.groups._(news["id"]).suppressions.post(request_body={"recipient_emails": ["x@console.test"]})
    other_mail = dict(mail("x@console.test", news["id"]), **{"from": {"email": "news@other.test"}})
    with pytest.raises(python_http_client.exceptions.BadRequestsError):
        other.client.mail.send.post(request_body=other_mail)
    # Mail in a group carries one-click unsubscribe (RFC 8058), and its link leaves that group only.
    client.client.mail.send.post(request_body=mail("oneclick@console.test", offers["id"]))
    message = received(mx, "oneclick@console.test")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"<(https?://[^>]+)>", message["List-Unsubscribe"]).group(1)
    assert requests.post(link, data="List-Unsubscribe=One-Click", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
    assert json.loads(client.client.asm.groups._(offers["id"]).suppressions.get().body) == ["oneclick@console.test"]
    assert api(console, "GET", "/v1/suppressions/oneclick@console.test")[0] == 404, "the account's own list is untouched"
    # Back in the group.
    assert client.client.asm.groups._(news["id"]).suppressions._("left@console.test").delete().status_code == 204
    assert json.loads(client.client.asm.groups._(news["id"]).suppressions.get().body) == []

    # Global unsubscribes are the account's suppression list (reason unsubscribe).
    assert client.client.asm.suppressions._("global").post(
        request_body={"recipient_emails": ["gone@console.test"]}).status_code == 201
    assert api(console, "GET", "/v1/suppressions/gone@console.test")[1]["reason"] == "unsubscribe"
    assert json.loads(client.client.asm.suppressions._("global")._("gone@console.test").get().body) == {
        "recipient_email": "gone@console.test"}
    assert "gone@console.test" in [s["email"] for s in json.loads(client.client.suppression.unsubscribes.get().body)]
    assert client.client.asm.suppressions._("global")._("gone@console.test").delete().status_code == 204
    assert api(console, "GET", "/v1/suppressions/gone@console.test")[0] == 404
    # Bounces are deleted one by one or all at once; another reason's entry is not touched.
    api(console, "POST", "/v1/suppressions", {"address": "b1@console.test", "reason": "bounce"})
    api(console, "POST", "/v1/suppressions", {"address": "b2@console.test", "reason": "bounce"})
    api(console, "POST", "/v1/suppressions", {"address": "kept@console.test", "reason": "manual"})
    assert client.client.suppression.bounces._("b1@console.test").delete().status_code == 204
    with pytest.raises(python_http_client.exceptions.NotFoundError):
        client.client.suppression.bounces._("kept@console.test").delete()
    assert client.client.suppression.bounces.delete(request_body={"delete_all": True}).status_code == 204
    assert api(console, "GET", "/v1/suppressions/b2@console.test")[0] == 404
    assert api(console, "GET", "/v1/suppressions/kept@console.test")[0] == 200
    assert client.client.asm.groups._(offers["id"]).delete().status_code == 204
    assert [g["name"] for g in json.loads(client.client.asm.groups.get().body)] == ["News"]


def test_console_compliance_report(console):
    member = Browser(console)
    member.login("member@acme.test", console.users["member@acme.test"])
    page = member.get("/console/domains/compliance", params={"domain": "acme.test"})
    assert page.status_code == 200 and 'id="compliance-report"' in page.text
    assert "DKIM" in page.text and "DMARC" in page.text
    assert member.get("/console/domains/compliance", params={"domain": "other.test"}).status_code == 404
    assert 'id="compliance-acme.test"' in member.get("/console/domains").text

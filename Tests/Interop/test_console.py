"""The web console in headless Chromium (selenium), its safety (CSRF, escaping,
tenant isolation, cookies, login throttle) over plain HTTP, and the management
API behind it; real mail through an aiosmtpd MX behind dnsmasq."""
import json
import pathlib
import re
import shutil
import smtplib
import time

import pytest
import requests

from console_support import Browser, api, console_server, delivered, recording_mx, send, wait_for

MX_IP = "127.0.0.35"
SCREENSHOTS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def mx():
    with recording_mx(MX_IP) as handler:
        yield handler


@pytest.fixture
def console(make_server, mx):
    with console_server(make_server, MX_IP) as server:
        yield server


# MARK: Safety over plain HTTP

def test_login_cookies_and_logout(console):
    browser = Browser(console)
    assert browser.get("/console/").headers["Location"].startswith("/console/login")
    response = browser.login("admin@acme.test", console.users["admin@acme.test"])
    cookie = [c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith("hk_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie, "plain HTTP without console.secureCookie: a Secure cookie would never come back"
    page = browser.get("/console/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in page.text.replace('<script src="/console/static/console.js" defer></script>', "")
    old_session = browser.session.cookies.get("hk_session", path="/console")
    # A new login rotates the session id; the old one no longer opens anything.
    browser.login("admin@acme.test", console.users["admin@acme.test"])
    assert browser.session.cookies.get("hk_session", path="/console") != old_session
    stale = requests.get(console.api_url + "/console/", cookies={"hk_session": old_session}, allow_redirects=False, timeout=10)
    assert stale.status_code == 303
    assert browser.post("/console/logout", {}).status_code == 303
    assert browser.get("/console/").status_code == 303


def test_cookies_are_secure_over_tls(make_server):
    server = make_server(start=False)
    server.create_account("acme", ["acme.test"])
    password = server.cli_json("user", "create", "a@acme.test", "--role", "admin", "--account", "acme")["password"]
    server.config["api"]["tls"] = True
    server.start()
    browser = Browser(server)
    browser.url = lambda path: f"https://127.0.0.1:{server.api_port}{path}"
    browser.verify = False  # the server's self-signed certificate
    import urllib3
    urllib3.disable_warnings()
    response = browser.login("a@acme.test", password)
    cookies = response.raw.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
    assert browser.get("/console/").status_code == 200


def test_login_is_throttled_per_user_and_wrong_logins_say_nothing_more(console):
    browser = Browser(console)
    for _ in range(3):
        response = browser.login("member@acme.test", "wrong password!", expect=401)
        assert "メールアドレスまたはパスワードが違います" in response.text or "password is wrong" in response.text
    unknown = browser.login("nobody@acme.test", "wrong password!", expect=401)
    assert unknown.text.count("error") == response.text.count("error")
    # The right password no longer helps for this user within the window…
    browser.login("member@acme.test", console.users["member@acme.test"], expect=429)
    # …but another user from elsewhere is not locked out by it.
    Browser(console).login("admin@acme.test", console.users["admin@acme.test"])


def test_forms_need_the_csrf_token(console):
    browser = Browser(console)
    browser.login("admin@acme.test", console.users["admin@acme.test"])
    for data in ({"addresses": "csrf@console.test"}, {"addresses": "csrf@console.test", "csrf": "forged-token-of-32-characters!!"}):
        response = browser.post("/console/suppressions", data, with_csrf=False)
        assert response.status_code == 403
    # A login form posted from elsewhere (no matching login cookie) is refused too.
    stranger = requests.post(console.api_url + "/console/login", data={"login_token": "x" * 33, "email": "admin@acme.test",
                                                                       "password": console.users["admin@acme.test"]},
                             allow_redirects=False, timeout=10)
    assert stranger.status_code == 403
    status, body = api(console, "GET", "/v1/suppressions")
    assert body["suppressions"] == []
    assert browser.post("/console/suppressions", {"addresses": "csrf@console.test"}).status_code == 303
    assert [s["address"] for s in api(console, "GET", "/v1/suppressions")[1]["suppressions"]] == ["csrf@console.test"]


def test_values_from_mail_are_escaped(console, mx):
    sent = send(console, ["xss@console.test", "ok@console.test"], subject="<script>alert(1)</script>")
    wait_for(lambda: delivered(console, sent), what="delivery")
    browser = Browser(console)
    browser.login("member@acme.test", console.users["member@acme.test"])
    for path in ("/console/log?recipient=xss%40console.test", f"/console/messages/{sent}", "/console/bounces", "/console/"):
        page = browser.get(path).text
        assert "<script>alert" not in page and "<b onmouseover" not in page, path
    timeline = browser.get(f"/console/messages/{sent}").text
    assert '<dd id="subject">&lt;script&gt;alert(1)&lt;/script&gt;</dd>' in timeline, "the subject is shown, as text"
    assert "&lt;b onmouseover=alert(1)&gt;gone&lt;/b&gt;" in timeline
    # A search box's value is echoed escaped too.
    page = browser.get('/console/log?recipient="><script>alert(3)</script>').text
    assert "<script>alert(3)" not in page and "&quot;&gt;&lt;script&gt;alert(3)" in page


def test_an_account_sees_only_its_own(console, mx):
    sent = send(console, ["iso@console.test"])
    wait_for(lambda: delivered(console, sent), what="delivery")
    outsider = Browser(console)
    outsider.login("member@other.test", console.users["member@other.test"])
    assert outsider.get(f"/console/messages/{sent}").status_code == 404
    assert 'id="no-events"' in outsider.get("/console/log?recipient=iso%40console.test").text
    assert outsider.post(f"/console/messages/{sent}/resend", {}).status_code == 404
    # A member reads but does not change: no keys page, no suppression changes.
    member = Browser(console)
    member.login("member@acme.test", console.users["member@acme.test"])
    assert member.get(f"/console/messages/{sent}").status_code == 200
    assert member.get("/console/keys").status_code == 403
    assert member.post("/console/suppressions", {"addresses": "x@console.test"}).status_code == 403
    assert member.get("/console/operator").status_code == 403
    # The management API holds the same line for keys of another account.
    other = console.other_token
    assert api(console, "GET", f"/v1/messages/{sent}", token=other)[0] == 404
    assert api(console, "POST", f"/v1/messages/{sent}/resend", {}, token=other)[0] == 404
    acme_key = api(console, "GET", "/v1/api-keys")[1]["keys"][0]["id"]
    assert api(console, "DELETE", f"/v1/api-keys/{acme_key}", token=other)[0] == 404
    assert api(console, "POST", "/v1/queue/cancel", {"ids": [sent]}, token=other)[1]["changed"] == 0
    assert api(console, "GET", "/v1/accounts/acme", token=other)[0] == 404
    assert api(console, "GET", "/v1/queue?account=acme", token=other)[0] == 403
    assert [u["email"] for u in api(console, "GET", "/v1/users", token=other)[1]["users"]] == ["member@other.test"]
    assert api(console, "GET", "/v1/users?account=*", token=other)[0] == 403
    assert api(console, "POST", "/v1/accounts", {"name": "mine"}, token=other)[0] == 403


# MARK: Management API

def test_management_api_accounts_keys_credentials_and_queue(console, mx):
    operator = console.cli_json("apikey", "create", "--account", "acme", "--scope", "operator")["token"]
    status, created = api(console, "POST", "/v1/accounts", {"name": "shop", "domains": ["shop.test"],
                                                            "quota": {"max_24h_send": 100, "sandbox": True}}, token=operator)
    assert status == 201 and created["smtp_password"] and created["quota"]["max_24h_send"] == 100, created
    assert api(console, "POST", "/v1/accounts", {"name": "shop"}, token=operator)[0] == 409
    assert {a["name"] for a in api(console, "GET", "/v1/accounts", token=operator)[1]["accounts"]} == {"acme", "other", "shop"}
    status, changed = api(console, "PATCH", "/v1/accounts/shop", {"disabled": True, "quota": {"max_send_rate": 5}}, token=operator)
    assert status == 200 and changed["disabled"] is True and changed["quota"]["max_send_rate"] == 5
    assert api(console, "PATCH", "/v1/accounts/shop", {"quota": {"max_send_rate": -7}}, token=operator)[0] == 400
    # An operator acts for another account with ?account=; an admin key cannot create an operator key.
    status, key = api(console, "POST", "/v1/api-keys?account=other", {"scope": "send"}, token=operator)
    assert status == 201 and key["token"].startswith("hk_")
    assert key["id"] in [k["id"] for k in api(console, "GET", "/v1/api-keys", token=console.other_token)[1]["keys"]]
    assert api(console, "POST", "/v1/api-keys", {"scope": "operator"})[0] == 403
    status, read_key = api(console, "POST", "/v1/api-keys", {"scope": "read"})
    assert api(console, "GET", "/v1/account", token=read_key["token"])[0] == 200
    assert api(console, "DELETE", f"/v1/api-keys/{read_key['id']}")[0] == 204
    wait_for(lambda: api(console, "GET", "/v1/account", token=read_key["token"])[0] == 401, timeout=15, what="revocation")

    # SMTP credential rotation: the new and the old both work until the old is revoked; the last cannot be revoked.
    first = api(console, "GET", "/v1/smtp-credentials")[1]["credentials"]
    assert len(first) == 1 and first[0]["primary"]
    status, second = api(console, "POST", "/v1/smtp-credentials")
    assert status == 201 and second["password"]

    def smtp_login(username, password):
        with smtplib.SMTP("127.0.0.1", console.smtp_port, timeout=30) as client:
            client.starttls()
            try:
                client.login(username, password)
                return True
            except smtplib.SMTPAuthenticationError:
                return False

    assert smtp_login(second["username"], second["password"])
    assert api(console, "DELETE", f"/v1/smtp-credentials/{first[0]['username']}")[0] == 204
    assert api(console, "DELETE", f"/v1/smtp-credentials/{second['username']}")[0] == 409
    assert smtp_login(second["username"], second["password"])
    assert not smtp_login(second["username"], "wrong" + second["password"])

    # Queue operations by filter and by id, scoped to the account.
    # Scheduled for later, so it waits in the queue while the operations act on it.
    status, body = api(console, "POST", "/v1/messages", {"from": "news@acme.test", "to": ["later@console.test"], "subject": "later",
                                                         "text": "hi", "send_at": int(time.time()) + 86400})
    assert status == 202, body
    sent = body["id"]
    wait_for(lambda: any(m["id"] == sent for m in api(console, "GET", "/v1/queue")[1]["messages"]), what="queued")
    sites = api(console, "GET", "/v1/queue/sites")[1]["sites"]
    assert any(s["domain"] == "console.test" for s in sites)
    assert api(console, "POST", "/v1/queue/hold", {})[0] == 400, "no filter is no accident"
    assert api(console, "POST", "/v1/queue/hold", {"recipient_domain": "console.test"})[1]["changed"] == 1
    assert [m["held"] for m in api(console, "GET", "/v1/queue?held=true")[1]["messages"]] == [True]
    assert api(console, "POST", "/v1/queue/release", {"ids": [sent]})[1]["changed"] == 1
    assert api(console, "POST", "/v1/queue/cancel", {"ids": [sent]})[1]["changed"] == 1
    assert api(console, "POST", "/v1/queue/bogus", {"all": True})[0] == 404
    assert api(console, "POST", "/v1/queue/sites", {"all": True})[0] == 405
    status, body = api(console, "GET", f"/v1/messages/{sent}")
    assert body["recipients"][0]["state"] == "cancelled"

    # Console users through the API: an admin makes members of its own account, never operators.
    status, user = api(console, "POST", "/v1/users", {"email": "new@acme.test", "role": "member"})
    assert status == 201 and user["password"] and user["account"] == "acme"
    assert api(console, "POST", "/v1/users", {"email": "boss@acme.test", "role": "operator"})[0] == 403
    Browser(console).login("new@acme.test", user["password"])


# MARK: The browser

@pytest.fixture
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    options.binary_location = chromium
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def shoot(driver, name):
    """A full-page screenshot into docs/screenshots/ (the README links them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(height + 40, 700), 4000))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def test_console_in_a_browser(console, mx, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    base = console.api_url
    find = driver.find_element

    def navigate(element):
        """Clicks, then waits until the next page has replaced this one."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        page = driver.find_element(By.TAG_NAME, "html")
        element.click()

        def replaced(_):
            # Chromedriver says a page mid-replacement is gone in two ways: a stale reference, or (a race in
            # its inspector) "Node with given id does not belong to the document".
            try:
                page.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as error:
                if "does not belong to the document" in str(error):
                    return True
                raise
        WebDriverWait(driver, 30).until(replaced)

    # Japanese first (no cookie yet, Chromium's default Accept-Language is English: choose ja explicitly).
    driver.get(base + "/console/language/ja?next=/console/login")
    assert "ログイン" in driver.title
    shoot(driver, "ja-login")
    find(By.ID, "email").send_keys("admin@acme.test")
    find(By.ID, "password").send_keys("not the password")
    navigate(find(By.ID, "login"))
    assert "パスワードが違います" in find(By.ID, "login-error").text
    find(By.ID, "email").send_keys("admin@acme.test")
    find(By.ID, "password").send_keys(console.users["admin@acme.test"])
    navigate(find(By.ID, "login"))
    assert driver.current_url.endswith("/console/") and "概要" in driver.title

    # Mail through the test MX, then find it in the log.
    sent = send(console, ["alice@console.test", "bad@console.test"], subject="ご注文ありがとうございます")
    wait_for(lambda: delivered(console, sent), what="delivery")
    driver.get(base + "/console/")
    shoot(driver, "ja-overview")
    driver.get(base + "/console/log")
    find(By.ID, "recipient").send_keys("alice@console.test")
    navigate(find(By.ID, "search"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert any("配信済み" in row.text and "alice@console.test" in row.text for row in rows), [r.text for r in rows]
    shoot(driver, "ja-log")
    navigate(driver.find_elements(By.CSS_SELECTOR, "#events a.message-link")[0])
    timeline = find(By.ID, "timeline").text
    assert "250 2.0.0 accepted by the console test MX" in timeline and "mx.console.test" in timeline
    assert "User unknown" in timeline
    assert "Subject:" in find(By.ID, "headers").text
    assert find(By.ID, "subject").text == "ご注文ありがとうございます"
    shoot(driver, "ja-message")

    # Resend to the delivered recipient only, and see the new delivery.
    for box in driver.find_elements(By.CSS_SELECTOR, "input[name=recipient]"):
        if box.get_attribute("value") != "alice@console.test" and box.is_selected():
            box.click()
    navigate(find(By.ID, "resend"))
    if not driver.find_elements(By.ID, "resent"):
        raise AssertionError("no resend notice: " + find(By.TAG_NAME, "main").text[:500])
    new_id = find(By.ID, "message-id").text
    assert new_id != sent
    wait_for(lambda: mx.count("alice@console.test") == 2, what="the resent copy")
    wait_for(lambda: delivered(console, new_id), what="the resend's delivery record")
    driver.refresh()
    assert "配信済み" in find(By.ID, "timeline").text

    # Bounce analysis shows the bounce.
    driver.get(base + "/console/bounces")
    # bad@console.test, and the DSN about it to news@acme.test (acme.test has no MX here): both the account's.
    assert find(By.ID, "bounce-total").text == "2"
    assert "invalid_recipient" in find(By.ID, "by-category").text
    assert "bad@console.test" in find(By.ID, "affected").text
    shoot(driver, "ja-bounces")

    # Suppressions: add, see, remove.
    driver.get(base + "/console/suppressions")
    find(By.ID, "addresses").send_keys("stop@console.test")
    navigate(find(By.ID, "add-suppression"))
    assert "stop@console.test" in find(By.ID, "suppressions").text
    shoot(driver, "ja-suppressions")
    # The hard bounce above suppressed bad@console.test by itself, with its evidence.
    assert "bad@console.test" in find(By.ID, "suppressions").text
    driver.execute_script("window.confirm = () => true")
    navigate(find(By.CSS_SELECTOR, "#suppressions button[aria-label$='stop@console.test']"))
    assert "stop@console.test" not in find(By.TAG_NAME, "main").text
    assert "bad@console.test" in find(By.ID, "suppressions").text

    # Keys: create (shown once), use, revoke.
    driver.get(base + "/console/keys")
    Select(find(By.ID, "scope")).select_by_value("read")
    navigate(find(By.ID, "create-key"))
    token = [code.text for code in driver.find_elements(By.CSS_SELECTOR, "#created-secret code") if code.text.startswith("hk_")][0]
    assert api(console, "GET", "/v1/account", token=token)[0] == 200
    shoot(driver, "ja-keys")
    key_id = token.split("_")[1]
    driver.get(base + "/console/keys")
    driver.execute_script("window.confirm = () => true")
    navigate(find(By.CSS_SELECTOR, f"button[aria-label$='{key_id}']"))
    assert not driver.find_elements(By.CSS_SELECTOR, f"button[aria-label$='{key_id}']")
    assert "失効" in [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr") if key_id in row.text][0]
    wait_for(lambda: api(console, "GET", "/v1/account", token=token)[0] == 401, timeout=15, what="revocation")

    # Domains: verify against dnsmasq.
    driver.get(base + "/console/domains")
    navigate(find(By.ID, "verify-acme.test"))
    assert find(By.ID, "check-verdict").text == "認証済み"
    shoot(driver, "ja-domains")
    # Templates: create one, preview it with sample data (the HTML in a sandboxed frame), send a test.
    driver.get(base + "/console/templates")
    find(By.CSS_SELECTOR, "details summary").click()
    find(By.ID, "name").send_keys("welcome")
    find(By.ID, "subject").send_keys("{{name}}様へのお知らせ")
    find(By.ID, "text").send_keys("{{name}}様、ご利用ありがとうございます。")
    find(By.ID, "html").send_keys("<p>{{name}}様、<b>ご利用ありがとうございます</b>。</p>")
    navigate(find(By.ID, "create-template"))
    data = find(By.ID, "data")
    data.clear()
    data.send_keys('{"name": "山田"}')
    navigate(find(By.ID, "preview-button"))
    assert find(By.ID, "preview-subject").text == "山田様へのお知らせ"
    driver.switch_to.frame(find(By.ID, "preview-frame"))
    assert "山田様、ご利用ありがとうございます。" in driver.find_element(By.TAG_NAME, "body").text
    driver.switch_to.default_content()
    shoot(driver, "ja-template")
    to = find(By.ID, "to")
    to.clear()
    to.send_keys("template@console.test")
    navigate(find(By.ID, "test-send"))
    wait_for(lambda: mx.count("template@console.test") == 1, what="the test send")
    driver.get(base + "/console/templates")
    shoot(driver, "ja-templates")
    for path, name in (("/console/queue", "queue"), ("/console/usage", "usage"), ("/console/webhooks", "webhooks"),
                       ("/console/settings", "settings")):
        driver.get(base + path)
        shoot(driver, f"ja-{name}")

    # English: the switch is remembered across pages.
    navigate(find(By.ID, "lang-en"))
    assert driver.title.startswith("Settings")
    for path, name in (("/console/", "overview"), ("/console/log?recipient=alice%40console.test", "log"),
                       (f"/console/messages/{sent}", "message"), ("/console/bounces", "bounces"),
                       ("/console/suppressions", "suppressions"), ("/console/keys", "keys"), ("/console/domains", "domains"),
                       ("/console/templates", "templates"), ("/console/templates/welcome", "template"),
                       ("/console/queue", "queue"), ("/console/usage", "usage"), ("/console/webhooks", "webhooks"),
                       ("/console/settings", "settings")):
        driver.get(base + path)
        assert find(By.TAG_NAME, "html").get_attribute("lang") == "en"
        shoot(driver, f"en-{name}")
    # Every page stays small (no images, no framework).
    for path in ("/console/", "/console/log", f"/console/messages/{sent}", "/console/bounces"):
        assert len(requests.get(base + path, cookies={c["name"]: c["value"] for c in driver.get_cookies()}, timeout=10).content) < 100_000

    # Log out.
    navigate(find(By.ID, "logout"))
    assert "/console/login" in driver.current_url
    shoot(driver, "en-login")

    # The operator's page.
    find(By.ID, "email").send_keys("ops@hikyaku.test")
    find(By.ID, "password").send_keys(console.users["ops@hikyaku.test"])
    navigate(find(By.ID, "login"))
    driver.get(base + "/console/operator")
    assert "acme" in find(By.ID, "accounts").text and "0.13.0" in find(By.ID, "health").text
    shoot(driver, "en-operator")


def test_ses_identities_and_sendgrid_api_keys_through_their_sdks(console):
    """Scripts written for SES and SendGrid manage domains and keys unchanged."""
    import boto3
    import sendgrid
    _, access_key, secret = console.api_key("acme", "admin")
    ses = boto3.client("sesv2", endpoint_url=console.api_url, region_name="ap-northeast-1",
                       aws_access_key_id=access_key, aws_secret_access_key=secret)
    created = ses.create_email_identity(EmailIdentity="news.acme.test")
    assert created["IdentityType"] == "DOMAIN" and created["VerifiedForSendingStatus"] is False
    assert created["DkimAttributes"]["Status"] == "PENDING" and len(created["DkimAttributes"]["Tokens"]) == 1
    listed = {i["IdentityName"]: i for i in ses.list_email_identities()["EmailIdentities"]}
    assert listed["acme.test"]["VerificationStatus"] == "PENDING" and "news.acme.test" in listed
    got = ses.get_email_identity(EmailIdentity="news.acme.test")
    assert got["DkimAttributes"]["Tokens"] == created["DkimAttributes"]["Tokens"]
    # The selector's TXT record is what GET /v1/domains publishes.
    domains = {d["domain"]: d for d in api(console, "GET", "/v1/domains")[1]["domains"]}
    assert domains["news.acme.test"]["dkim"][0]["selector"] == got["DkimAttributes"]["Tokens"][0]
    # The same call again in the same second would carry the same signature (refused as a replay): wait for the next.
    time.sleep(1.1)
    with pytest.raises(ses.exceptions.AlreadyExistsException):
        ses.create_email_identity(EmailIdentity="news.acme.test")
    with pytest.raises(ses.exceptions.NotFoundException):
        ses.get_email_identity(EmailIdentity="other.test")  # another account's domain
    with pytest.raises(ses.exceptions.BadRequestException):
        ses.create_email_identity(EmailIdentity="someone@acme.test")

    client = sendgrid.SendGridAPIClient(api_key=console.token, host=console.api_url)
    response = client.client.api_keys.post(request_body={"name": "mailer", "scopes": ["mail.send"]})
    assert response.status_code == 201
    key = json.loads(response.body)
    assert key["name"] == "mailer" and key["scopes"] == ["mail.send", "templates.read"] and key["api_key"].startswith("hk_")
    sender = sendgrid.SendGridAPIClient(api_key=key["api_key"], host=console.api_url)
    mail = {"personalizations": [{"to": [{"email": "someone@console.test"}]}], "from": {"email": "news@acme.test"},
            "subject": "hi", "content": [{"type": "text/plain", "value": "hi"}]}
    assert sender.client.mail.send.post(request_body=mail).status_code == 202
    listed = json.loads(client.client.api_keys.get().body)["result"]
    assert {"api_key_id": key["api_key_id"], "name": "mailer"} in listed
    assert client.client.api_keys._(key["api_key_id"]).delete().status_code == 204
    wait_for(lambda: api(console, "GET", "/v1/account", token=key["api_key"])[0] == 401, timeout=15, what="revocation")
    # A send-only key cannot make keys.
    import python_http_client
    with pytest.raises(python_http_client.exceptions.ForbiddenError):
        sendgrid.SendGridAPIClient(api_key=api(console, "POST", "/v1/api-keys", {"scope": "send"})[1]["token"],
                                   host=console.api_url).client.api_keys.post(request_body={"name": "x"})


def totp(secret, at=None, step=30):
    """RFC 6238 with the standard library: what an authenticator app shows."""
    import base64
    import hashlib
    import hmac
    import struct
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((at or time.time()) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def test_two_step_verification(console):
    browser = Browser(console)
    browser.login("admin@acme.test", console.users["admin@acme.test"])
    assert browser.post("/console/settings/totp", {"current": "not the password"}).status_code == 400
    page = browser.post("/console/settings/totp", {"current": console.users["admin@acme.test"]}).text
    secret = re.search(r'id="totp-secret" class="copyable">([A-Z2-7]+)<', page).group(1)
    assert "otpauth://totp/" in page
    assert browser.post("/console/settings/totp/confirm", {"code": "123456" if totp(secret) != "123456" else "654321"}).status_code == 400
    assert 'id="totp-on"' in browser.post("/console/settings/totp/confirm", {"code": totp(secret)}).text
    # Now the password alone fails; the current code (once) gets in.
    fresh = Browser(console)
    fresh.login("admin@acme.test", console.users["admin@acme.test"], expect=401)
    code = totp(secret, time.time() + 30)  # the next step's code: the one used to confirm cannot be used again

    def login_with(code):
        page = fresh.session.get(fresh.url("/console/login"), timeout=10)
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        return fresh.session.post(fresh.url("/console/login"), data={"login_token": token, "email": "admin@acme.test",
                                                                     "password": console.users["admin@acme.test"], "code": code},
                                  allow_redirects=False, timeout=30).status_code

    assert login_with(code) == 303
    assert login_with(code) == 401, "a code works once"
    # Turning it off needs a current code, not just the session; nor can the session replace it.
    assert browser.post("/console/settings/totp/disable", {"code": "000000"}).status_code == 400
    assert browser.post("/console/settings/totp", {"current": console.users["admin@acme.test"]}).status_code == 409

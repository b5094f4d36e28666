"""Contacts, segments, campaigns and A/B tests: a Shift_JIS import of 100,000
contacts with bad rows, a segment count checked against Python, a campaign to
1,000 contacts through an aiosmtpd MX with a SIGKILL mid-send, and an A/B
test decided by clicks on the tracked links."""
import csv
import datetime
import email
import email.policy
import io
import random
import re
import time

import pytest
import requests

from console_support import api, console_server, recording_mx, wait_for

MX_IP = "127.0.0.37"


@pytest.fixture(scope="module")
def mx():
    with recording_mx(MX_IP) as handler:
        yield handler


def add_fields(server, fields):
    for name, kind in fields:
        status, body = api(server, "POST", "/v1/contacts/fields", {"name": name, "type": kind})
        assert status == 201, body


def upload(server, data, query=""):
    response = requests.post(server.api_url + "/v1/contacts/imports" + query, data=data, timeout=120,
                             headers={"Authorization": "Bearer " + server.token, "Content-Type": "text/csv"})
    assert response.status_code == 202, response.text
    started = response.json()
    done = wait_for(lambda: (lambda item: item if item["state"] in ("done", "failed") else None)(
        api(server, "GET", f"/v1/contacts/imports/{started['id']}")[1]), timeout=300, what="the import")
    return done


def test_shift_jis_import_and_a_segment_count(make_server, mx):
    with console_server(make_server, MX_IP) as server:
        add_fields(server, [("氏名", "text"), ("誕生日", "date"), ("ポイント", "number"), ("会員ランク", "text")])
        rng = random.Random(14)
        family = ["山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "髙橋", "﨑山"]
        given = ["太郎", "花子", "一郎", "美咲", "翔", "①子"]
        rows = []
        bad = {}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["email", "氏名", "誕生日", "ポイント", "会員ランク", "備考"])
        line = 1
        for i in range(100_000):
            line += 1
            birthday = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365 * 55))
            points = rng.randrange(0, 3000)
            name = rng.choice(family) + " " + rng.choice(given)
            address = f"user{i}@example.jp"
            if i in (10, 5000, 77_777):
                address = f"broken{i}.example.jp"
                bad[line] = "not an address"
            elif i in (20, 60_000):
                birthday = "1990/13/45"
                bad[line] = "誕生日"
            elif i == 30:
                points = "たくさん"
                bad[line] = "ポイント"
            if i == 40:
                name = "改行を\n含む 名前"  # a quoted field over two lines
            writer.writerow([address, name, str(birthday).replace("-", "/") if i % 3 == 0 and line not in bad else birthday,
                             points, rng.choice(["ゴールド", "シルバー", "ブロンズ"]), "メモ"])
            if line not in bad:
                rows.append((address, birthday, points))
            if i == 40:
                line += 1  # the record took two lines
        data = out.getvalue().encode("cp932")
        result = upload(server, data)
        assert result["state"] == "done", result
        lines = {error["line"]: error["message"] for error in result["errors"]}
        assert lines.pop(1).startswith("unknown field 備考"), "the unknown column is reported on the header line"
        assert set(lines) == set(bad), (sorted(lines), sorted(bad))
        for number, what in bad.items():
            assert what in lines[number], (number, lines[number])
        assert result["rows_invalid"] == len(bad) and result["applied"] == len(rows) == 100_000 - len(bad)

        status, contact = api(server, "GET", "/v1/contacts/user40@example.jp")
        assert status == 200 and contact["fields"]["氏名"] == "改行を\n含む 名前", contact
        status, contact = api(server, "GET", "/v1/contacts/user1@example.jp")
        assert contact["fields"]["会員ランク"] in ("ゴールド", "シルバー", "ブロンズ")

        month = datetime.datetime.now(datetime.timezone.utc).month
        expected = sum(1 for _, birthday, points in rows if birthday.month == month and points >= 1000)
        segment = {"all": [{"field": "誕生日", "part": "month", "op": "eq", "value": "this_month"},
                           {"field": "ポイント", "op": "gte", "value": 1000}]}
        status, count = api(server, "POST", "/v1/segments/count", {"segment": segment})
        assert status == 200 and count["count"] == expected and count["sendable"] == expected, (count, expected)
        # Segments are checked against the fields: a typo is a 400 that names the part at fault.
        status, body = api(server, "POST", "/v1/segments/count", {"segment": {"all": [{"field": "誕生月", "op": "eq", "value": 1}]}})
        assert status == 400 and body["error"]["message"].startswith("segment.all[0].field "), body
        status, body = api(server, "POST", "/v1/segments/count",
                           {"segment": {"field": "ポイント", "op": "gte", "value": "1000; DROP TABLE contact"}})
        assert status == 400, body
        # Another account sees none of it.
        status, body = api(server, "GET", "/v1/contacts/user1@example.jp", token=server.other_token)
        assert status == 404
        # A file without an address column fails whole, applying nothing.
        failed = upload(server, "氏名,ポイント\r\n誰か,5\r\n".encode("utf-8"))
        assert failed["state"] == "failed" and failed["applied"] == 0, failed


def test_campaign_to_a_thousand_contacts_survives_sigkill(make_server, mx):
    with console_server(make_server, MX_IP) as server:
        server.cli("account", "set-quota", "acme", "--rate", "150")
        server.stop()
        server.start()
        add_fields(server, [("氏名", "text"), ("ポイント", "number")])
        lines = ["email,氏名,ポイント"] + [f"c{i}@console.test,顧客{i},{i * 7}" for i in range(1000)]
        assert upload(server, "\r\n".join(lines).encode("utf-8"))["applied"] == 1000
        response = requests.post(server.api_url + "/v3/asm/groups", json={"name": "ニュース", "description": "news"},
                                 headers={"Authorization": "Bearer " + server.token}, timeout=30)
        group = response.json()
        suppressed = [f"c{i}@console.test" for i in range(5)]
        left_group = [f"c{i}@console.test" for i in range(5, 10)]
        for address in suppressed:
            assert api(server, "POST", "/v1/suppressions", {"address": address, "reason": "unsubscribe"})[0] in (200, 201)
        response = requests.post(server.api_url + f"/v3/asm/groups/{group['id']}/suppressions",
                                 json={"recipient_emails": left_group}, headers={"Authorization": "Bearer " + server.token}, timeout=30)
        assert response.status_code == 201, response.text
        status, campaign = api(server, "POST", "/v1/campaigns", {
            "name": "ポイントのお知らせ", "from": "news@acme.test", "from_name": "ACME",
            "subject": "{{氏名}}様のポイント", "text": "{{氏名}}様、現在のポイントは{{ポイント}}です。",
            "unsubscribe_group": group["id"], "tags": ["points"]})
        assert status == 201, campaign
        wait_for(lambda: api(server, "GET", f"/v1/campaigns/{campaign['id']}")[1]["progress"]["queued"] >= 200, timeout=60,
                 what="part of the campaign queued")
        server.kill()
        server.start()
        final = wait_for(lambda: (lambda c: c if c["state"] == "sent" else None)(api(server, "GET", f"/v1/campaigns/{campaign['id']}")[1]),
                         timeout=120, what="the campaign sent")
        assert final["progress"]["queued"] == 990 and final["excluded"] == 10, final
        expected = {f"c{i}@console.test": i for i in range(10, 1000)}
        wait_for(lambda: len({r for r, _ in mx.messages if r in expected}) == 990, timeout=120, what="every contact's mail")
        ids = {}
        for recipient, content in mx.messages:
            if not recipient.startswith("c") or not recipient.endswith("@console.test"):
                continue
            assert recipient in expected, f"{recipient} is suppressed or unsubscribed but got the campaign"
            message = email.message_from_bytes(content, policy=email.policy.default)
            ids.setdefault(recipient, set()).add(message["Message-ID"])
            i = expected[recipient]
            assert str(message["Subject"]) == f"顧客{i}様のポイント"
            assert f"顧客{i}様、現在のポイントは{i * 7}です。" in message.get_body(("plain",)).get_content()
            assert message["List-Unsubscribe"] and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        duplicates = {recipient: found for recipient, found in ids.items() if len(found) > 1}
        assert not duplicates, f"contacts sent the campaign twice across the kill: {duplicates}"
        report = api(server, "GET", f"/v1/campaigns/{campaign['id']}/report")[1]
        assert report["totals"]["accepted"] == 990
        # The delivery log's follower writes the contacts' activity, which segments can ask about.
        # It polls, so the last deliveries may reach the contacts a moment after the MX saw them: wait for all 990.
        delivered = {"segment": {"activity": "delivered", "within_days": 1}}
        wait_for(lambda: api(server, "POST", "/v1/segments/count", delivered)[1]["count"] == 990, timeout=60,
                 what="every contact's last delivery")
        assert "last_delivered_at" in api(server, "GET", "/v1/contacts/c500@console.test")[1]
        assert "last_delivered_at" not in api(server, "GET", "/v1/contacts/c3@console.test")[1]
        csv_text = requests.get(server.api_url + f"/v1/campaigns/{campaign['id']}/report.csv", timeout=30,
                                headers={"Authorization": "Bearer " + server.token}).text
        assert csv_text.startswith("variant,subject,accepted,delivered") and "\r\nall," in csv_text
        # The preference page behind the unsubscribe link: public, bilingual, token-protected; one topic left, then rejoined.
        auth = {"Authorization": "Bearer " + server.token}
        first = email.message_from_bytes([c for r, c in mx.messages if r == "c10@console.test"][0], policy=email.policy.default)
        link = re.search(r"<(https?://[^>]+/u/[^>]+)>", str(first["List-Unsubscribe"])).group(1)
        link = server.api_url + link[link.index("/u/"):]  # the API listens on a new port since the restart
        page = requests.get(link, timeout=30)
        assert page.status_code == 200 and "/preferences" in page.text
        page = requests.get(link + "/preferences", timeout=30)
        assert page.status_code == 200 and "配信設定" in page.text and "Email preferences" in page.text and "c10@console.test" in page.text
        assert f'name="group" value="{group["id"]}" checked' in page.text and "ニュース" in page.text
        assert requests.post(link + "/preferences", data={}, timeout=30).status_code == 400, "a bare POST changes nothing"
        saved = requests.post(link + "/preferences", data={"save": "1"}, timeout=30)
        assert saved.status_code == 200 and "保存しました" in saved.text and f'value="{group["id"]}" checked' not in saved.text
        left = requests.get(server.api_url + f"/v3/asm/groups/{group['id']}/suppressions", headers=auth, timeout=30).json()
        assert "c10@console.test" in left
        saved = requests.post(link + "/preferences", data={"group": str(group["id"]), "save": "1"}, timeout=30)
        assert f'value="{group["id"]}" checked' in saved.text
        left = requests.get(server.api_url + f"/v3/asm/groups/{group['id']}/suppressions", headers=auth, timeout=30).json()
        assert "c10@console.test" not in left
        assert api(server, "GET", "/v1/suppressions/c10@console.test")[0] == 404
        saved = requests.post(link + "/preferences", data={"group": str(group["id"]), "all": "leave", "save": "1"}, timeout=30)
        assert 'name="all" value="leave" checked' in saved.text
        assert api(server, "GET", "/v1/suppressions/c10@console.test")[1]["scope"] == "marketing"
        # A suppression the sender made is never lifted from the page.
        assert requests.post(link + "/preferences", data={"group": str(group["id"]), "save": "1"}, timeout=30).status_code == 200
        assert api(server, "GET", "/v1/suppressions/c10@console.test")[0] == 404, "the page's own suppression is lifted"
        assert api(server, "POST", "/v1/suppressions", {"address": "c10@console.test", "reason": "bounce"})[0] in (200, 201)
        requests.post(link + "/preferences", data={"group": str(group["id"]), "save": "1"}, timeout=30)
        assert api(server, "GET", "/v1/suppressions/c10@console.test")[1]["reason"] == "bounce", "a bounce is never lifted"
        token = link.rsplit("/", 1)[1]
        forged = link[: -len(token)] + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert requests.get(forged + "/preferences", timeout=30).status_code == 404
        assert requests.post(forged + "/preferences", data={}, timeout=30).status_code == 404
        # Cancelling a sent campaign is refused; another account cannot see it.
        assert api(server, "POST", f"/v1/campaigns/{campaign['id']}/cancel")[0] == 409
        assert api(server, "GET", f"/v1/campaigns/{campaign['id']}", token=server.other_token)[0] == 404


def test_ab_test_sends_the_variant_with_more_clicks_to_the_rest(make_server, mx):
    with console_server(make_server, MX_IP) as server:
        add_fields(server, [("氏名", "text")])
        lines = ["email,氏名"] + [f"ab{i}@console.test,テスト{i}" for i in range(200)]
        assert upload(server, "\r\n".join(lines).encode("utf-8"))["applied"] == 200
        html = '<p>{{氏名}}様</p><p><a href="https://shop.example/sale">セール</a></p>'
        status, campaign = api(server, "POST", "/v1/campaigns", {
            "name": "AB", "from": "news@acme.test", "subject": "base", "html": html, "track_clicks": True,
            "ab_test": {"variants": [{"subject": "件名A"}, {"subject": "件名B"}], "test_percent": 50, "criterion": "clicks",
                        "wait_seconds": 25}})
        assert status == 201, campaign
        test_mail = wait_for(lambda: (lambda found: found if len(found) >= 100 else None)(
            [(r, c) for r, c in mx.messages if r.startswith("ab")]), timeout=60, what="the test mail")
        assert len({r for r, _ in test_mail}) == 100
        time.sleep(11)  # clicks within seconds of delivery are a scanner's, not a reader's
        browser = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"}
        clicked = {"件名A": 0, "件名B": 0}
        for recipient, content in test_mail:
            message = email.message_from_bytes(content, policy=email.policy.default)
            subject = str(message["Subject"])
            link = re.search(r'href="([^"]+/t/c/[^"]+)"', message.get_body(("html",)).get_content()).group(1)
            # B's readers click four times as often.
            if clicked[subject] < (40 if subject == "件名B" else 10):
                response = requests.get(link, headers=browser, allow_redirects=False, timeout=30)
                assert response.status_code in (302, 303), response.status_code
                clicked[subject] += 1
        final = wait_for(lambda: (lambda c: c if c["state"] == "sent" else None)(api(server, "GET", f"/v1/campaigns/{campaign['id']}")[1]),
                         timeout=120, what="the campaign sent")
        assert final["winner"] == "B", final
        wait_for(lambda: len({r for r, _ in mx.messages if r.startswith("ab")}) == 200, timeout=60, what="the rest")
        rest = [email.message_from_bytes(c, policy=email.policy.default) for r, c in mx.messages if r.startswith("ab")][100:]
        assert rest and all(str(m["Subject"]) == "件名B" for m in rest)
        report = api(server, "GET", f"/v1/campaigns/{campaign['id']}/report")[1]
        variants = {v["variant"]: v for v in report["variants"]}
        assert variants["A"]["clicks"]["unique"] == 10 and variants["B"]["clicks"]["unique"] >= 40
        assert report["ab_test"]["leader"] == "B" and report["ab_test"]["confidence"] > 0.99
        assert "confidence" in final["decision"]


def test_console_contacts_and_campaigns(make_server, mx):
    from console_support import Browser
    with console_server(make_server, MX_IP) as server:
        admin = Browser(server)
        admin.login("admin@acme.test", server.users["admin@acme.test"])
        for name, kind in [("氏名", "text"), ("ポイント", "number")]:
            assert admin.post("/console/contacts/fields", {"name": name, "type": kind}).status_code == 303
        assert admin.post("/console/contacts/fields", {"name": "氏名", "type": "text"}).status_code == 409
        csv_text = "email,氏名,ポイント\r\n" + "".join(f"w{i}@console.test,顧客{i},{i * 100}\r\n" for i in range(30)) + "broken,x,1\r\n"
        assert admin.post("/console/contacts/import", {"csv": csv_text}).headers["Location"] == "/console/contacts?imported=1"
        page = wait_for(lambda: (lambda text: text if ">done<" in text or ">完了<" in text else None)(admin.get("/console/contacts").text),
                        what="the console import")
        assert "broken" in page and ("行 32" in page or "line 32" in page), "the bad row is named by its line"
        page = admin.get("/console/contacts", params={"q": "w3@console.test"}).text
        assert 'id="contact"' in page and "顧客3" in page and "300" in page
        page = admin.get("/console/contacts", params={"segment": '{"field":"ポイント","op":"gte","value":2000}'}).text
        assert re.search(r'id="segment-count"[^>]*>[^<]*<strong>10</strong>', page), page[page.find("segment-count") - 100:][:400]
        page = admin.get("/console/contacts", params={"segment": '{"field":"誕生月","op":"eq","value":1}'}).text
        assert 'id="segment-error"' in page and "誕生月" in page
        exported = admin.get("/console/contacts.csv").text
        assert exported.startswith("email,氏名,ポイント\r\n") and "w29@console.test,顧客29,2900" in exported
        created = admin.post("/console/campaigns", {"name": "コンソールから", "from": "news@acme.test", "subject": "{{氏名}}様",
                                                    "text": "{{氏名}}様 {{ポイント}}点", "segment": '{"field":"ポイント","op":"lt","value":500}',
                                                    "draft": "on"})
        assert created.status_code == 303, created.text[:500]
        location = created.headers["Location"]
        page = admin.get(location).text
        assert 'id="schedule"' in page and ("下書き" in page or "draft" in page)
        assert admin.post(location + "/action", {"action": "schedule"}).status_code == 303
        wait_for(lambda: len({r for r, _ in mx.messages if r in {f"w{i}@console.test" for i in range(5)}}) == 5, what="the console campaign")
        page = wait_for(lambda: (lambda text: text if ("送信済み" in text or ">sent<" in text) else None)(admin.get(location).text),
                        what="the campaign page says sent")
        assert 'id="campaign-chart"' in page and "<svg" in page
        report = admin.get(location + "/report.csv").text
        assert report.startswith("variant,subject,accepted") and "\r\nall," in report
        member = Browser(server)
        member.login("member@acme.test", server.users["member@acme.test"])
        assert member.get(location).status_code == 200
        assert member.post(location + "/action", {"action": "cancel"}).status_code == 403
        assert member.post("/console/contacts/import", {"csv": "email\r\nx@console.test\r\n"}).status_code == 403
        other = Browser(server)
        other.login("member@other.test", server.users["member@other.test"])
        assert other.get(location).status_code == 404

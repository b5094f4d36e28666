"""The command line: accounts and the queue, while the server runs."""
import json
import os
import smtplib


def test_account_commands(server):
    created = server.cli_json("account", "create", "shop", "--domain", "shop.example")
    assert created["account"]["name"] == "shop"
    assert len(created["smtpPassword"]) >= 30
    listed = server.cli_json("account", "list")
    assert [a["name"] for a in listed] == ["shop"]
    assert "smtpPassword" not in json.dumps(listed)
    server.cli("account", "add-domain", "shop", "news.shop.example")
    server.cli("account", "disable", "shop")
    listed = server.cli_json("account", "list")
    assert listed[0]["disabled"] is True
    assert listed[0]["domains"] == ["news.shop.example", "shop.example"]
    duplicate = server.cli("account", "create", "shop", check=False)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    missing = server.cli("account", "disable", "ghost", check=False)
    assert missing.returncode != 0


def test_password_is_not_stored_in_clear(server):
    created = server.cli_json("account", "create", "shop", "--domain", "shop.example")
    with open(f"{server.data_dir}/hikyaku.sqlite", "rb") as f:
        data = f.read()
    import glob
    for path in glob.glob(f"{server.data_dir}/hikyaku.sqlite*"):
        assert created["smtpPassword"].encode() not in open(path, "rb").read()
    assert created["smtpPassword"].encode() not in open(server.stderr_path, "rb").read()


def test_queue_commands_while_running(trusted_server):
    with smtplib.SMTP("127.0.0.1", trusted_server.smtp_port, timeout=20) as client:
        for index in range(3):
            client.sendmail("a@example.com", [f"r{index}@example.org"], f"Subject: {index}\r\n\r\nbody {index}\r\n".encode())
    queued = trusted_server.queue()
    assert len(queued) == 3
    first = queued[0]["id"]
    details = trusted_server.cli_json("queue", "show", first)
    assert details["sender"] == "a@example.com"
    assert [(r["address"], r["state"], r["attempts"]) for r in details["recipients"]] == [("r0@example.org", "queued", 0)]
    assert details["clientAddress"] == "127.0.0.1"
    trusted_server.cli("queue", "hold", first)
    assert trusted_server.cli_json("queue", "show", first)["held"] is True
    trusted_server.cli("queue", "release", first)
    assert trusted_server.cli_json("queue", "show", first)["held"] is False
    trusted_server.cli("queue", "delete", first)
    assert [m["id"] for m in trusted_server.queue()] == [m["id"] for m in queued[1:]]
    # Deleting cancels: the record and the log say so.
    assert [r["state"] for r in trusted_server.cli_json("queue", "show", first)["recipients"]] == ["cancelled"]
    events = trusted_server.cli_json("log", "--message", first)
    assert [e["type"] for e in events] == ["cancelled", "accepted"] and events[0]["recipient"] == "r0@example.org"
    assert len(trusted_server.cli_json("queue", "list", "--all")) == 3
    assert trusted_server.cli("queue", "delete", "notanid", check=False).returncode != 0
    # The server keeps accepting after the CLI changed the queue under it.
    with smtplib.SMTP("127.0.0.1", trusted_server.smtp_port, timeout=20) as client:
        client.sendmail("a@example.com", ["x@example.org"], b"Subject: again\r\n\r\nx\r\n")
    assert len(trusted_server.queue()) == 3


def test_delete_all(trusted_server):
    with smtplib.SMTP("127.0.0.1", trusted_server.smtp_port, timeout=20) as client:
        for index in range(5):
            client.sendmail("a@example.com", ["r@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert trusted_server.cli("queue", "delete", "--all").stdout.strip() == "deleted 5"
    assert trusted_server.queue() == []
    assert trusted_server.cli("queue", "delete", check=False).returncode != 0


def test_classify_with_operator_rules(tmp_path):
    import subprocess
    from conftest import BINARY
    result = subprocess.run([BINARY, "classify", "--code", "550", "--enhanced", "5.2.0", "--text", "Message rejected",
                             "--host", "mfsmax.docomo.ne.jp", "--json", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == {"category": "filtered", "hard": True, "rule": "docomo-filtered", "stage": "provider",
                                         "suppresses": False}
    # Both hosts and the command: docomo's "Unknown user" after DATA is the recipient's filter, at RCPT a missing address.
    for command, category, suppresses in [("DATA", "filtered", False), ("RCPT", "invalid_recipient", True)]:
        result = subprocess.run([BINARY, "classify", "--code", "550", "--text", "Unknown user a@docomo.ne.jp", "--mx", "mx.example.net",
                                 "--domain", "docomo.ne.jp", "--command", command, "--json", "--data-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
        output = json.loads(result.stdout)
        assert (output["category"], output["suppresses"]) == (category, suppresses), output
    # --explain names each rule tried before the one that matched, and why it did not.
    result = subprocess.run([BINARY, "classify", "--code", "550", "--enhanced", "5.1.1", "--text", "Recipient address rejected: Greylisted",
                             "--command", "RCPT", "--explain", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0] == "rate_limited\tsoft\tgreylisted", lines[0]
    assert any("docomo-user-unknown\tno: neither the MX host nor the domain" in line for line in lines), lines
    assert lines[-1] == "does not suppress the recipient"
    # After DATA the recipient had been accepted: a generic "No such user" there is its filter, and --explain says why.
    result = subprocess.run([BINARY, "classify", "--code", "550", "--text", "kijitora@example.net... No such user", "--command", "DATA",
                             "--explain", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0] == "filtered\thard\tunknown-after-data", lines
    assert any(line.startswith("  generic\tuser-unknown\tno: not at RCPT (after DATA the recipient had been accepted") for line in lines), lines
    # A labelled corpus: the score and the time per reply.
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "User unknown", "code": 550, "enhanced": "5.1.1", "command": "RCPT", "mx": None,
                                  "domain": None, "category": "invalid_recipient"}) + "\n")
    result = subprocess.run([BINARY, "classify", "--corpus", str(corpus), "--json", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout)["right"] == 1, result.stdout + result.stderr
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"id": "ours", "category": "inactive_mailbox", "hosts": ["docomo.ne.jp"]}]}))
    result = subprocess.run([BINARY, "classify", "--code", "550", "--enhanced", "5.2.0", "--host", "mfsmax.docomo.ne.jp",
                             "--json", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, HIKYAKU_CLASSIFICATION_RULES_FILE=str(rules)))
    assert json.loads(result.stdout)["rule"] == "ours"
    rules.write_text("{not json")
    result = subprocess.run([BINARY, "classify", "--code", "550", "--data-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, HIKYAKU_CLASSIFICATION_RULES_FILE=str(rules)))
    assert result.returncode != 0

"""Real SMTP clients against the intake: swaks (STARTTLS, AUTH, pipelining) and smtplib."""
import smtplib
import ssl
import subprocess

from conftest import RawClient, greet


def swaks(port, *args):
    result = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--timeout", "20", *args],
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_starttls_auth_plain_pipelined(server):
    user, password = server.create_account()
    rc, out = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                    "--from", "app@acme.example", "--to", "someone@example.org", "--pipeline")
    assert rc == 0, out
    assert "250 2.0.0 OK queued as" in out
    queued = server.queue()
    assert len(queued) == 1 and queued[0]["sender"] == "app@acme.example"
    raw = server.cli("queue", "show", queued[0]["id"], "--raw").stdout
    assert "with ESMTPSA id" in raw and "authenticated sender: acme" in raw and "using TLSv1." in raw


def test_starttls_auth_login(server):
    user, password = server.create_account()
    rc, out = swaks(server.smtp_port, "--tls", "--auth", "LOGIN", "--auth-user", user, "--auth-password", password,
                    "--from", "app@acme.example", "--to", "someone@example.org")
    assert rc == 0, out
    assert len(server.queue()) == 1


def test_implicit_tls_port(server):
    user, password = server.create_account()
    rc, out = swaks(server.tls_port, "--tlsc", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                    "--from", "app@acme.example", "--to", "someone@example.org")
    assert rc == 0, out
    assert len(server.queue()) == 1


def test_wrong_password_and_unknown_user_look_the_same(server):
    user, password = server.create_account()
    _, wrong = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password + "x",
                     "--from", "app@acme.example", "--to", "someone@example.org")
    _, unknown = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", "nobody", "--auth-password", password,
                       "--from", "app@acme.example", "--to", "someone@example.org")
    assert "535 5.7.8 Authentication credentials invalid" in wrong
    assert "535 5.7.8 Authentication credentials invalid" in unknown
    assert server.queue() == []


def test_disabled_account_cannot_log_in(server):
    user, password = server.create_account()
    server.cli("account", "disable", "acme")
    _, out = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                   "--from", "app@acme.example", "--to", "someone@example.org")
    assert "535 5.7.8" in out


def test_sender_domain_must_belong_to_the_account(server):
    user, password = server.create_account()
    _, out = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                   "--from", "ceo@victim.example", "--to", "someone@example.org")
    assert "553 5.7.1" in out
    server.cli("account", "add-domain", "acme", "victim.example")
    rc, out = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                    "--from", "ceo@victim.example", "--to", "someone@example.org")
    assert rc == 0, out


def test_no_auth_offered_or_accepted_without_tls(server):
    user, password = server.create_account()
    rc, out = swaks(server.smtp_port, "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                    "--from", "app@acme.example", "--to", "someone@example.org")
    assert rc != 0
    client = RawClient(server.smtp_port)
    ehlo = greet(client)
    assert "AUTH" not in ehlo and "STARTTLS" in ehlo
    code, text = client.command("AUTH PLAIN AHVzZXIAcGFzcw==")
    assert code == 538 and "5.7.11" in text
    client.close()


def test_smtplib_with_starttls_and_login(server):
    user, password = server.create_account()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        client.starttls(context=context)
        client.login(user, password)
        refused = client.sendmail("app@acme.example", ["a@example.org", "b@example.net"],
                                  b"Subject: hello\r\n\r\nbody line\r\n.leading dot\r\n")
        assert refused == {}
    queued = server.queue()
    assert len(queued) == 1 and queued[0]["recipientCount"] == 2
    raw = server.raw_message(queued[0]["id"])
    assert raw.endswith(b"Subject: hello\r\n\r\nbody line\r\n.leading dot\r\n")
    assert b"Message-ID: <" in raw and b"\r\nDate: " in raw


def test_smtplib_smtputf8_from_trusted_network(trusted_server):
    with smtplib.SMTP("127.0.0.1", trusted_server.smtp_port, timeout=20) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("送信者@例え.jp", ["受信者@例え.jp"], "Subject: テスト\r\n\r\n本文\r\n".encode(),
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    queued = trusted_server.queue()
    assert queued[0]["sender"] == "送信者@例え.jp"
    raw = trusted_server.cli("queue", "show", queued[0]["id"], "--raw").stdout
    assert "with UTF8SMTP id" in raw and "本文" in raw


def test_anonymous_relay_is_refused_by_smtplib(server):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=20) as client:
        try:
            client.sendmail("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
            raise AssertionError("relay accepted")
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients["b@example.org"]
            assert code == 554 and b"5.7.1" in text
    assert server.queue() == []


def test_smtp_source_load(trusted_server):
    result = subprocess.run(["smtp-source", "-s", "20", "-m", "500", "-l", "2048", "-f", "load@source.example",
                             "-t", "sink@dest.example", f"127.0.0.1:{trusted_server.smtp_port}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(trusted_server.cli_json("queue", "list", "--limit", "1000")) == 500

"""Zero-config start, SIGTERM drain, storage-full back-pressure."""
import json
import os
import smtplib
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, RawClient, greet


def test_zero_config_start_creates_data_dir_and_certificate():
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, HIKYAKU_SMTP_LISTEN="127.0.0.1:0", HIKYAKU_SMTP_TLS_LISTEN="127.0.0.1:0",
                   HIKYAKU_ADMIN_LISTEN="127.0.0.1:0", HIKYAKU_API_LISTEN="127.0.0.1:0")
        proc = subprocess.Popen([BINARY, "serve"], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            # The HTTP ports may come up before or after the SMTP listeners.
            lines = [proc.stdout.readline().decode() for _ in range(5)]
            assert any(line.startswith("hikyaku: listening admin 127.0.0.1:") for line in lines)
            assert any(line.startswith("hikyaku: listening api 127.0.0.1:") for line in lines)
            lines = [line for line in lines if not line.startswith(("hikyaku: listening admin ", "hikyaku: listening api "))]
            assert lines[0].startswith("hikyaku: listening smtp 127.0.0.1:")
            assert lines[1].startswith("hikyaku: listening smtp-tls 127.0.0.1:")
            assert "account create" in lines[2]
            data = os.path.join(directory, "hikyaku-data")
            assert os.path.exists(os.path.join(data, "hikyaku.sqlite"))
            assert os.path.exists(os.path.join(data, "spool", "queue.sqlite"))
            key = os.path.join(data, "tls", "private-key.pem")
            assert os.stat(key).st_mode & 0o077 == 0, "the private key is readable by its owner only"
            port = int(lines[0].rsplit(":", 1)[1])
            client = RawClient(port)
            text = greet(client)
            assert "STARTTLS" in text
            assert client.command("STARTTLS")[0] == 220
            client.starttls()
            assert client.command("EHLO again")[0] == 250
            client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0


def test_sigterm_drains_sessions(trusted_server):
    idle = RawClient(trusted_server.smtp_port)
    greet(idle)
    busy = RawClient(trusted_server.smtp_port)
    greet(busy)
    assert busy.command("MAIL FROM:<a@example.com>")[0] == 250
    assert busy.command("RCPT TO:<b@example.org>")[0] == 250
    assert busy.command("DATA")[0] == 354
    busy.send(b"Subject: in flight\r\n\r\n")
    trusted_server.proc.send_signal(signal.SIGTERM)
    code, text = idle.reply()
    assert code == 421 and "4.3.2" in text
    assert idle.expect_closed()
    # The session in DATA may finish its message, then is told to go.
    busy.send(b"last line\r\n.\r\n")
    assert busy.reply()[0] == 250
    code, _ = busy.reply()
    assert code == 421
    assert trusted_server.proc.wait(timeout=30) == 0
    # New connections are refused once draining started.
    with pytest.raises(OSError):
        RawClient(trusted_server.smtp_port, timeout=2).reply()
    trusted_server.start()
    assert len(trusted_server.queue()) == 1


def test_full_disk_gets_452_never_250(make_server):
    server = make_server(start=False, trustedNetworks=["127.0.0.0/8"], maxMessageSize=200000)
    os.makedirs(server.data_dir, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", server.data_dir], capture_output=True, text=True)
    assert result.returncode == 0, "this test needs to mount a small tmpfs (run as root): " + result.stderr
    try:
        server.stderr_path = "/tmp/hikyaku-full-disk.log"
        server.start()
        acknowledged, refused = 0, None
        for number in range(40):
            client = RawClient(server.smtp_port)
            client.begin_data()
            client.send(b"Subject: %d\r\n\r\n" % number + (b"y" * 998 + b"\r\n") * 100 + b".\r\n")
            code, text = client.reply()
            client.close()
            if code == 250:
                acknowledged += 1
            else:
                refused = (code, text)
                break
        assert refused is not None, "the disk never filled"
        assert refused[0] in (452, 451) and ("4.3.1" in refused[1] or "4.3.0" in refused[1]), refused
        assert acknowledged > 0
        server.stop()
        server.start()
        assert len(server.queue()) == acknowledged
        server.stop()
    finally:
        server.kill()
        subprocess.run(["umount", "-l", server.data_dir])


def test_port_in_use_is_a_clear_start_up_error(make_server):
    first = make_server()
    second = make_server(start=False)
    second.config["smtp"]["listen"] = [f"127.0.0.1:{first.smtp_port}"]
    with pytest.raises(RuntimeError):
        second.start()
    assert second.proc.wait(timeout=30) == 1
    assert "cannot start" in second.log() and "Address already in use" in second.log()


def test_the_node_registry_lists_this_node(make_server):
    """Each node writes its status (version, pending mail) to the store; `cluster status` and the admin
    port's /cluster list it, alive while it writes and silent once it stops."""
    import urllib.request
    server = make_server(start=False, trustedNetworks=["127.0.0.0/8"])
    server.config["cluster"] = {"nodeName": "node-a", "heartbeatSeconds": 1}
    server.start()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.org"], b"Subject: queued\r\n\r\nbody\r\n")
    deadline = time.time() + 30
    while True:
        listed = server.cli_json("cluster", "status")
        if listed and listed[0]["node"]["pendingMessages"] == 1:
            break
        assert time.time() < deadline, listed
        time.sleep(0.2)
    (item,) = listed
    assert item["node"]["name"] == "node-a" and item["alive"] is True and item["node"]["pendingRecipients"] == 1
    assert item["node"]["version"]
    with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/cluster", timeout=10) as response:
        nodes = json.loads(response.read())["nodes"]
    assert [(n["name"], n["alive"], n["pending_messages"]) for n in nodes] == [("node-a", True, 1)]
    server.stop()
    time.sleep(3.5)
    # With the node's configuration (its heartbeat interval), as an operator runs it.
    (item,) = server.cli_json("cluster", "status", "--config", server.config_path)
    assert item["alive"] is False, "silent for more than three heartbeats"
    server.cli("cluster", "forget", "node-a")
    assert server.cli_json("cluster", "status") == []

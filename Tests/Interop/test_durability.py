"""A 250 means durable: SIGKILL during load loses no acknowledged message,
and no unacknowledged partial message survives."""
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import RawClient

MARKER = "END-OF-MESSAGE-{}"


def body_for(number):
    lines = [f"Subject: message {number}", "X-Number: %d" % number, ""]
    lines += [f"line {i} of message {number} " + "x" * 60 for i in range(20)]
    lines.append(MARKER.format(number))
    return ("\r\n".join(lines) + "\r\n").encode()


def stored_messages(data_dir):
    """Reads the queue index and segment files directly: (number → count, bodies)."""
    database = sqlite3.connect(os.path.join(data_dir, "spool", "queue.sqlite"))
    rows = database.execute("SELECT id, segment, offset, length FROM message").fetchall()
    database.close()
    found = {}
    for _, segment, offset, length in rows:
        with open(os.path.join(data_dir, "spool", "segments", "%012d.seg" % segment), "rb") as f:
            f.seek(offset)
            data = f.read(length)
        assert len(data) == length
        match = re.search(rb"X-Number: (\d+)\r\n", data)
        assert match, "a stored message without its number: partial or foreign"
        number = int(match.group(1))
        assert data.endswith(body_for(number)), f"message {number} is not byte-for-byte what was sent"
        found[number] = found.get(number, 0) + 1
    return found


def sender(port, numbers, acknowledged, lock, stop):
    for number in numbers:
        if stop.is_set():
            return
        try:
            client = RawClient(port, timeout=10)
            client.begin_data()
            client.send(body_for(number) + b".\r\n")
            code, _ = client.reply()
            if code == 250:
                with lock:
                    acknowledged.add(number)
            client.close()
        except (OSError, ConnectionError):
            return


@pytest.mark.parametrize("rounds", [3])
def test_sigkill_during_load_loses_no_acknowledged_message(make_server, rounds):
    server = make_server(trustedNetworks=["127.0.0.0/8"])
    acknowledged = set()
    lock = threading.Lock()
    next_number = 0
    for round_number in range(rounds):
        stop = threading.Event()
        threads = []
        for _ in range(16):
            numbers = range(next_number, next_number + 200)
            next_number += 200
            thread = threading.Thread(target=sender, args=(server.smtp_port, numbers, acknowledged, lock, stop))
            threads.append(thread)
            thread.start()
        time.sleep(1.0 + 0.5 * round_number)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        stop.set()
        for thread in threads:
            thread.join()
        server.start()
    server.stop()
    found = stored_messages(server.data_dir)
    missing = acknowledged - set(found)
    assert len(acknowledged) > 100, "the load did not get going"
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:10]}"
    # Messages stored but never acknowledged (killed between commit and reply) are allowed.
    assert all(count == 1 for count in found.values())


def test_kill_during_data_leaves_nothing(make_server):
    server = make_server(trustedNetworks=["127.0.0.0/8"])
    client = RawClient(server.smtp_port)
    client.begin_data()
    client.send(body_for(1)[:500])
    time.sleep(0.3)
    server.kill()
    client.close()
    server.start()
    assert server.queue() == []
    server.stop()
    assert stored_messages(server.data_dir) == {}


def test_data_is_synced_before_the_250(make_server):
    """strace: the segment holding the message record is fdatasync'd before
    the 250 is written to the client (a kill test cannot see a missing sync)."""
    server = make_server(trustedNetworks=["127.0.0.0/8"])
    trace = os.path.join(server.data_dir, "strace.log")
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, "-s", "80", "-p", str(server.proc.pid),
                               "-e", "trace=fdatasync,fsync,write,writev,sendmsg,pwrite64"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # strace announces nothing on -qq; wait until it has attached to every thread.
        deadline = time.time() + 10
        while time.time() < deadline:
            status = open(f"/proc/{server.proc.pid}/status").read()
            if "TracerPid:\t0" not in status:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        client = RawClient(server.smtp_port)
        client.begin_data()
        client.send(body_for(7) + b".\r\n")
        code, _ = client.reply()
        assert code == 250
        client.close()
        server.stop()
    finally:
        tracer.wait(timeout=30)
    lines = open(trace).read().splitlines()
    reply_index = next(i for i, line in enumerate(lines) if "OK queued as" in line)
    record_write = next(i for i, line in enumerate(lines) if "pwrite64(" in line and "HKY1" in line)
    syncs = [i for i, line in enumerate(lines[record_write:reply_index]) if re.search(r"\bfdatasync\(", line)]
    assert syncs, "no fdatasync between writing the record and the 250:\n" + "\n".join(lines[record_write:reply_index + 1])


# A crash between a remote server's 250 and our record of it redelivers the message after the restart.
# The loop measures it: numbered messages, each injected once, through the relay to a sink while the relay is
# killed again and again (20 times); nothing acknowledged may be lost. The sink counts a message once its 250 is sent, so a
# duplicate is a reply the relay had not yet read when it died. On a quiet machine with a release build this is
# under one per kill (docs/performance.md, 40,000 messages and 20 kills); here, a debug build sharing two cores
# with the injector and the sink in Python, the bound is looser so that a slow machine does not fail it.
def test_kill_loop_loses_nothing_and_rarely_redelivers():
    import killloop
    from conftest import BINARY

    result = killloop.run(BINARY, messages=4000, kills=20, concurrency=4, record_after_reply=True)
    print("kill loop:", {k: v for k, v in result.items() if k != "directory"})
    assert result["kills"] == 20
    assert result["lost"] == 0, result["lost_sample"]
    assert result["delivered"] >= result["acknowledged"]
    assert result["duplicates_per_kill"] <= 2.0, result

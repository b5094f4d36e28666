#!/usr/bin/env python3
"""Console and log-search speed with a large delivery log.

Starts hikyaku once to create its stores, writes EVENTS delivery events
(default 1,000,000) for one account straight into the queue index (messages
with 3 recipients over 14 days: accepted, then delivered, deferred or
bounced, at the shares a real sender sees), starts it again and measures,
with 20 concurrent logged-in clients:

- log search by recipient (console page and API),
- log search by time range + status, first page (console page and API),
- the overview page (graphs of 24 hours and 14 days),

printing p50/p95/p99 per request kind and the size of each page.

    bench/console.py [--events 1000000] [--clients 20] [--seconds 20]
"""
import argparse
import concurrent.futures
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("HIKYAKU_BIN", os.path.join(ROOT, ".build", "release", "hikyaku"))
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
DOMAINS = ["docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "gmail.com", "yahoo.co.jp", "outlook.jp", "icloud.com", "example.jp"]


def message_id(n):
    text = ""
    for _ in range(20):
        text = ALPHABET[n % 32] + text
        n //= 32
    return text


def start(data, config):
    proc = subprocess.Popen([BINARY, "serve", "--config", config, "--data-dir", data], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(data, "server.log"), "ab"))
    port = None
    deadline = time.time() + 120
    while port is None and time.time() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            raise SystemExit("server exited; see " + os.path.join(data, "server.log"))
        if line.startswith("hikyaku: listening api "):
            port = int(line.rsplit(":", 1)[1])
    return proc, port


def populate(data, events, accounts):
    """EVENTS events of account 1 (and a few of account 2, so the account filter has work), newest now."""
    db = sqlite3.connect(os.path.join(data, "spool", "queue.sqlite"))
    db.execute("PRAGMA synchronous=OFF")
    now = time.time()
    span = 14 * 86400
    random.seed(1)
    recipients = [f"user{n}@{DOMAINS[n % len(DOMAINS)]}" for n in range(100_000)]
    messages = events // 6  # 3 recipients, 2 events each
    batch_m, batch_e = [], []
    first_id = int(now) << 60  # ids sort by time like the server's own
    for n in range(messages):
        account = 1 if n % 20 else 2
        received = now - span + span * n / messages
        mid = message_id(first_id + n)
        batch_m.append((mid, received, account, "news@acme.example", 2048, 1, 0, 2048, 0, "127.0.0.1", "bench", 0))
        for r in range(3):
            recipient = recipients[random.randrange(len(recipients))]
            batch_e.append((received, account, mid, recipient, "accepted", None, 250, "2.0.0", "from <news@acme.example>", None, None,
                            None, None, None))
            roll = random.random()
            site = recipient.split("@")[1].split(".")[0]
            if roll < 0.90:
                batch_e.append((received + 2, account, mid, recipient, "delivered", 1, 250, "2.0.0", "ok", None, None, site,
                                "mx." + recipient.split("@")[1], "192.0.2.1"))
            elif roll < 0.95:
                batch_e.append((received + 2, account, mid, recipient, "deferred", 1, 451, "4.7.1", "try later", "rate_limited", 0, site,
                                "mx." + recipient.split("@")[1], "192.0.2.1"))
            else:
                batch_e.append((received + 2, account, mid, recipient, "bounced", 1, 550, "5.1.1", "user unknown", "invalid_recipient", 1,
                                site, "mx." + recipient.split("@")[1], "192.0.2.1"))
        if len(batch_e) >= 60_000 or n == messages - 1:
            db.executemany("INSERT INTO message (id, received_at, account_id, sender, size, segment, offset, length, smtputf8, "
                           "client_address, helo, held) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch_m)
            db.executemany("INSERT INTO delivery_event (at, account_id, message_id, recipient, type, attempt, reply_code, enhanced_code, "
                           "reply_text, category, hard, site, mx_host, remote_ip) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_e)
            db.commit()
            batch_m, batch_e = [], []
    db.execute("ANALYZE")
    db.commit()
    count = db.execute("SELECT COUNT(*) FROM delivery_event").fetchone()[0]
    db.close()
    return count, recipients


def login(base, email, password):
    session = requests.Session()
    page = session.get(base + "/console/login", timeout=30)
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    response = session.post(base + "/console/login", data={"login_token": token, "email": email, "password": password,
                                                           "next": "/console/"}, allow_redirects=False, timeout=60)
    assert response.status_code == 303, response.status_code
    return session


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hikyaku-bench-console-") as data:
        config = os.path.join(data, "config.json")
        json.dump({"smtp": {"listen": ["127.0.0.1:0"], "tlsListen": []}, "admin": {"listen": ""}, "api": {"listen": "127.0.0.1:0"},
                   "delivery": {"enabled": False}, "log": {"retentionDays": 30}}, open(config, "w"))
        run = lambda *a: subprocess.run([BINARY, *a, "--data-dir", data, "--config", config], check=True, capture_output=True, text=True)
        run("account", "create", "acme", "--domain", "acme.example")
        run("account", "create", "other", "--domain", "other.example")
        password = json.loads(run("user", "create", "admin@acme.example", "--role", "admin", "--account", "acme", "--json").stdout)["password"]
        token = json.loads(run("apikey", "create", "--account", "acme", "--scope", "read", "--json").stdout)["token"]
        proc, _ = start(data, config)  # creates the queue index
        proc.terminate()
        proc.wait()
        began = time.time()
        count, recipients = populate(data, args.events, 2)
        print(f"delivery log: {count:,} events written in {time.time() - began:.0f} s")
        proc, port = start(data, config)
        base = f"http://127.0.0.1:{port}"
        try:
            sessions = [login(base, "admin@acme.example", password) for _ in range(args.clients)]
            day_ago = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 9 * 3600 - 86400))  # the console reads Tokyo time
            api = {"Authorization": "Bearer " + token}
            kinds = {
                "console log by recipient": lambda s: s.get(base + "/console/log?recipient=" + random.choice(recipients), timeout=60),
                "console log since+status (first page)": lambda s: s.get(base + f"/console/log?status=bounced&since={day_ago}", timeout=60),
                "console overview": lambda s: s.get(base + "/console/", timeout=60),
                "api events by recipient": lambda s: s.get(base + "/v1/events?limit=50&recipient=" + random.choice(recipients),
                                                           headers=api, timeout=60),
                "api events since+status (first page)": lambda s: s.get(
                    base + f"/v1/events?limit=50&status=bounced&since={int(time.time()) - 86400}", headers=api, timeout=60),
            }
            sizes = {}
            for name, call in kinds.items():
                response = call(sessions[0])
                assert response.status_code == 200, (name, response.status_code, response.text[:300])
                sizes[name] = len(response.content)
            # Server time: one client, one request at a time.
            print(f"{'alone (one client)':40} {'n':>6} {'p50 ms':>8} {'p95 ms':>8}")
            for name, call in kinds.items():
                alone = []
                for _ in range(40):
                    t0 = time.perf_counter()
                    assert call(sessions[0]).status_code == 200
                    alone.append((time.perf_counter() - t0) * 1000)
                alone.sort()
                print(f"{name:40} {len(alone):>6} {statistics.median(alone):>8.1f} {alone[int(len(alone) * 0.95)]:>8.1f}")
            print(f"{'20 clients at once':40} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'bytes':>8}")
            for name, call in kinds.items():
                latencies = []
                lock = threading.Lock()
                stop = time.time() + args.seconds

                def client(session):
                    while time.time() < stop:
                        t0 = time.perf_counter()
                        response = call(session)
                        elapsed = (time.perf_counter() - t0) * 1000
                        assert response.status_code == 200
                        with lock:
                            latencies.append(elapsed)

                with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(client, sessions))
                latencies.sort()
                q = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))]
                print(f"{name:40} {len(latencies):>6} {statistics.median(latencies):>8.1f} {q(0.95):>8.1f} {q(0.99):>8.1f} "
                      f"{sizes[name]:>8,}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())

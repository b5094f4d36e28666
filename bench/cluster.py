#!/usr/bin/env python3
"""The shared store's cost (docs/performance.md, "The shared store"), on the release build:

  cluster.py BIN load SMTP_MESSAGES API_MESSAGES   # one node on a private PostgreSQL: authenticated SMTP and API mail,
                                                   # delivered to smtp-sink; PostgreSQL statements, PostgreSQL CPU and
                                                   # node CPU per message
  cluster.py BIN latency ROUNDS                    # two nodes: from a suppression added through node A's API to node B's
                                                   # first attempt that drops the address

PostgreSQL runs from scripts/postgres.sh with pg_stat_statements and fsync on; smtp-sink (Postfix) is the MX.
"""
import json
import os
import random
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
SINK_PORT = 2861


def cpu_seconds(pid, children=False):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    return (own + (int(fields[13]) + int(fields[14]) if children else 0)) / TICKS


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hikyaku-pg-bench-")
        self.url = subprocess.run(["bash", f"{ROOT}/scripts/postgres.sh", "start", self.dir,
                                   "shared_preload_libraries=pg_stat_statements", "max_connections=200"],
                                  check=True, capture_output=True, text=True).stdout.strip()
        self.sql("CREATE EXTENSION pg_stat_statements")

    def sql(self, statement):
        query = dict(part.split("=") for part in self.url.split("?")[1].split("&"))
        return subprocess.run(["psql", "-h", query["host"], "-p", query["port"], "-U", "hikyaku", "-d", "postgres", "-At", "-F", "\t",
                               "-c", statement], check=True, capture_output=True, text=True).stdout

    def cpu(self):
        """CPU of the whole server: the postmaster's and its children's, those gone included."""
        postmaster = int(open(f"{self.dir}/data/postmaster.pid").readline())
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return cpu_seconds(postmaster, children=True) + sum(cpu_seconds(int(pid)) for pid in children)

    def stop(self):
        subprocess.run(["bash", f"{ROOT}/scripts/postgres.sh", "stop", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    def __init__(self, binary, work, name, url, host="127.0.0.1", delivery=True, secrets=None):
        self.binary, self.host = binary, host
        self.data = os.path.join(work, name)
        os.makedirs(self.data, exist_ok=True)
        if secrets:
            shutil.copy(secrets, os.path.join(self.data, "secrets.key"))
            os.chmod(os.path.join(self.data, "secrets.key"), 0o600)
        shaping = os.path.join(work, "shaping.json")
        with open(shaping, "w") as f:
            json.dump({"sites": [{"name": "sink", "domains": ["bench.example"], "maxConnections": 20}]}, f)
        config = {"hostname": "hikyaku.bench", "logLevel": "warning", "storage": {"url": url},
                  "cluster": {"nodeName": name, "heartbeatSeconds": 2},
                  "api": {"listen": f"{host}:0"}, "admin": {"listen": ""}, "domains": {"requireVerified": False, "reverifySeconds": 0},
                  "smtp": {"listen": [f"{host}:0"], "tlsListen": [], "maxConnectionsPerClient": 1000},
                  "delivery": {"enabled": delivery, "smarthost": f"127.0.0.1:{SINK_PORT}", "allowNonPublicAddresses": True,
                               "shapingFile": shaping}}
        self.config = os.path.join(self.data, "config.json")
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.env = dict(os.environ, HIKYAKU_STORAGE_URL=url)
        self.proc = subprocess.Popen([binary, "serve", "--config", self.config, "--data-dir", self.data], env=self.env,
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(self.data, "err"), "ab"))
        self.smtp_port = self.api_port = None
        while self.smtp_port is None or self.api_port is None:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise SystemExit("the node exited: " + open(os.path.join(self.data, "err")).read()[-2000:])
            if line.startswith("hikyaku: listening smtp "):
                self.smtp_port = int(line.rsplit(":", 1)[1])
            elif line.startswith("hikyaku: listening api "):
                self.api_port = int(line.rsplit(":", 1)[1])

    def cli(self, *args):
        return subprocess.run([self.binary, *args, "--data-dir", self.data], env=self.env, check=True, capture_output=True,
                              text=True).stdout

    def call(self, method, path, token, body=None):
        request = urllib.request.Request(f"http://{self.host}:{self.api_port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def sink():
    proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{SINK_PORT}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit("smtp-sink did not start")
    return proc


def load(binary, smtp_messages, api_messages):
    postgres, mx, work = Postgres(), sink(), tempfile.mkdtemp(prefix="hikyaku-cluster-bench-")
    try:
        node = Node(binary, work, "a", postgres.url)
        created = json.loads(node.cli("account", "create", "bench", "--domain", "bench.example", "--json"))
        user, password = created["account"]["smtpUsername"], created["smtpPassword"]
        token = json.loads(node.cli("apikey", "create", "--account", "bench", "--scope", "admin", "--json"))["token"]
        time.sleep(3)
        postgres.sql("SELECT pg_stat_statements_reset()")
        pg_before, node_before, start = postgres.cpu(), cpu_seconds(node.proc.pid), time.monotonic()

        sessions, per_session = 20, max(1, smtp_messages // 20)
        errors = []
        sent = [0]
        # One sign-in at a time: the relay allows a client address few password checks at once.
        signing_in = threading.Lock()

        def session(number):
            try:
                with smtplib.SMTP(node.host, node.smtp_port, timeout=120) as smtp:
                    smtp.starttls()
                    with signing_in:
                        smtp.login(user, password)
                    for n in range(per_session):
                        smtp.sendmail("news@bench.example", [f"s{number}-{n}@bench.example"], b"Subject: bench\r\n\r\nhello\r\n")
                        sent[0] += 1
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(repr(error))
        threads = [threading.Thread(target=session, args=(number,)) for number in range(sessions)]
        for thread in threads:
            thread.start()
        for batch in range(api_messages // 100):
            status, body = node.call("POST", "/v1/messages", token, {
                "from": "news@bench.example", "subject": "bench", "text": "hello",
                "recipients": [{"to": f"api{batch}-{i}@bench.example"} for i in range(100)]})
            if status != 202:
                errors.append(f"API {status} {body}")
            else:
                sent[0] += 100
        for thread in threads:
            thread.join()
        while node.cli("queue", "list").strip():
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        time.sleep(2)  # the log's last copy and the usage flush
        pg_cpu, node_cpu = postgres.cpu() - pg_before, cpu_seconds(node.proc.pid) - node_before
        rows = [line.split("\t") for line in postgres.sql(
            "SELECT calls, round(total_exec_time::numeric, 1), left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
            "WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC").splitlines()]
        events = int(postgres.sql("SELECT count(*) FROM delivery_event").strip())
        size = int(postgres.sql("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                                "WHERE inhparent = 'delivery_event'::regclass").strip())
        calls = sum(int(row[0]) for row in rows)
        exec_ms = sum(float(row[1]) for row in rows)
        messages = sent[0]
        node.stop()
        print(f"load: {messages:,} messages ({sessions * per_session:,} over {sessions} authenticated SMTP sessions, "
              f"{(api_messages // 100) * 100:,} through the API in 100s), delivered in {elapsed:.1f} s = {messages / elapsed:,.0f} msg/s"
              + (f"; ERRORS {errors[:3]}" if errors else ""))
        print(f"  PostgreSQL: {calls:,} statements = {calls / messages:.4f} per message; execution {exec_ms:,.0f} ms; "
              f"server CPU {pg_cpu:.2f} s = {pg_cpu * 1000 / messages:.4f} ms per message")
        print(f"  node CPU {node_cpu:.2f} s = {node_cpu * 1000 / messages:.3f} ms per message")
        print(f"  shared log: {events:,} events in {size / 1e6:.1f} MB with indexes = {size / events:.0f} bytes per event")
        for row in rows[:10]:
            print(f"    {int(row[0]):>7,} calls {float(row[1]):>9,.1f} ms  {row[2]}")
    finally:
        mx.terminate()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def latency(binary, rounds):
    postgres, mx, work = Postgres(), sink(), tempfile.mkdtemp(prefix="hikyaku-cluster-bench-")
    try:
        a = Node(binary, work, "a", postgres.url, host="127.0.0.2", delivery=False)
        b = Node(binary, work, "b", postgres.url, host="127.0.0.3", secrets=os.path.join(a.data, "secrets.key"))
        created = json.loads(a.cli("account", "create", "bench", "--domain", "bench.example", "--json"))
        user, password = created["account"]["smtpUsername"], created["smtpPassword"]
        token = json.loads(a.cli("apikey", "create", "--account", "bench", "--scope", "admin", "--json"))["token"]
        time.sleep(6)
        figures = []
        # Mail through node B's SMTP intake: the API's intake checks the suppression list itself, while mail that came by
        # SMTP meets it at delivery, through the node's copy read again every 5 s: the path whose delay is measured.
        smtp = smtplib.SMTP(b.host, b.smtp_port, timeout=120)
        smtp.starttls()
        smtp.login(user, password)
        # Mail to another address all along keeps node B's copy of the list in use, read again every 5 s as in
        # production; an idle node reads it again at its first use, at once.
        warm = smtplib.SMTP(b.host, b.smtp_port, timeout=120)
        warm.starttls()
        warm.login(user, password)
        running = threading.Event()
        running.set()

        def keep_warm():
            while running.is_set():
                warm.sendmail("news@bench.example", ["warm@bench.example"], b"Subject: w\r\n\r\nw\r\n")
                time.sleep(0.1)
        threading.Thread(target=keep_warm, daemon=True).start()
        for number in range(rounds):
            address = f"gone{number}@bench.example"
            # A moment anywhere in the copy's 5 s.
            time.sleep(random.uniform(0, 5))
            start = time.time()
            assert a.call("POST", "/v1/suppressions", token, {"address": address, "reason": "manual"})[0] in (200, 201)
            while time.time() - start < 8:
                smtp.sendmail("news@bench.example", [address], b"Subject: s\r\n\r\nt\r\n")
                time.sleep(0.05)
            time.sleep(2)
            events = b.call("GET", f"/v1/events?recipient={address}&status=suppressed&limit=1000", token)[1]["events"]
            delivered = b.call("GET", f"/v1/events?recipient={address}&status=delivered&limit=1000", token)[1]["events"]
            first = min(time.mktime(time.strptime(e["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + e["at"][20:23])
                        for e in events)
            figures.append(first - start)
            print(f"latency round {number + 1}: {len(delivered)} delivered, then the first attempt dropping the address "
                  f"{first - start:.2f} s after the API call on node A", flush=True)
        figures.sort()
        print(f"latency: {rounds} rounds: min {figures[0]:.2f} s, median {figures[len(figures) // 2]:.2f} s, max {figures[-1]:.2f} s")
        running.clear()
        time.sleep(0.5)
        smtp.quit()
        a.stop()
        b.stop()
    finally:
        mx.terminate()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    binary, mode = sys.argv[1], sys.argv[2]
    if mode == "load":
        load(binary, int(sys.argv[3]), int(sys.argv[4]))
    else:
        latency(binary, int(sys.argv[3]))

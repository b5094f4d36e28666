#!/usr/bin/env python3
"""Contacts and campaigns at scale, against the release build:

1. imports CONTACTS contacts (default 1,000,000) from a Shift_JIS CSV with
   Japanese names, birthdays and points, timing upload + import until done,
   and the server's peak RSS (VmHWM) while it runs;
2. counts a segment ("birthday this month and points >= 1000") over them,
   best and median of 5;
3. enqueues a campaign to every contact (delivery off, no rate limit) and
   times it from creation until every recipient is in the spool.

Prints each figure against the target of issue 14 (import <= 60 s and
<= 300 MB RSS; segment count <= 1 s; enqueue >= 20,000 recipients/s).

    bench/campaigns.py [--contacts 1000000]
"""
import argparse
import csv
import datetime
import io
import json
import os
import random
import statistics
import subprocess
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("HIKYAKU_BIN", os.path.join(ROOT, ".build", "release", "hikyaku"))


def start(data, config):
    proc = subprocess.Popen([BINARY, "serve", "--config", config, "--data-dir", data], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(data, "server.log"), "ab"))
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            raise SystemExit("server exited; see " + os.path.join(data, "server.log"))
        if line.startswith("hikyaku: listening api "):
            return proc, int(line.rsplit(":", 1)[1])
    raise SystemExit("server did not start")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    """User + system CPU time of the process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="hikyaku-bench-campaigns-") as data:
        config = os.path.join(data, "config.json")
        json.dump({"smtp": {"listen": ["127.0.0.1:0"], "tlsListen": []}, "admin": {"listen": ""}, "api": {"listen": "127.0.0.1:0"},
                   "delivery": {"enabled": False}, "domains": {"requireVerified": False}}, open(config, "w"))
        run = lambda *a: subprocess.run([BINARY, *a, "--data-dir", data, "--config", config], check=True, capture_output=True, text=True)
        run("account", "create", "acme", "--domain", "acme.example")
        token = json.loads(run("apikey", "create", "--account", "acme", "--scope", "admin", "--json").stdout)["token"]
        headers = {"Authorization": "Bearer " + token}
        proc, port = start(data, config)
        base = f"http://127.0.0.1:{port}"
        try:
            for name, kind in [("氏名", "text"), ("誕生日", "date"), ("ポイント", "number")]:
                assert requests.post(base + "/v1/contacts/fields", json={"name": name, "type": kind}, headers=headers).status_code == 201
            family, given = ["山田", "佐藤", "鈴木", "高橋", "田中"], ["太郎", "花子", "一郎", "美咲"]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(["email", "氏名", "誕生日", "ポイント"])
            month = datetime.datetime.now(datetime.timezone.utc).month
            expected = 0
            for i in range(args.contacts):
                birthday = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365 * 55))
                points = rng.randrange(0, 3000)
                expected += birthday.month == month and points >= 1000
                writer.writerow([f"user{i}@example.jp", rng.choice(family) + " " + rng.choice(given), birthday, points])
            body = out.getvalue().encode("cp932")
            print(f"CSV: {args.contacts} rows, {len(body) / 1e6:.1f} MB Shift_JIS")

            began = time.time()
            response = requests.post(base + "/v1/contacts/imports", data=body, headers={**headers, "Content-Type": "text/csv"})
            assert response.status_code == 202, response.text
            import_id = response.json()["id"]
            uploaded = time.time() - began
            applying = None
            while True:
                item = requests.get(base + f"/v1/contacts/imports/{import_id}", headers=headers).json()
                if item["state"] == "applying" and applying is None:
                    applying = time.time()
                if item["state"] in ("done", "failed"):
                    break
                time.sleep(0.1)
            seconds = time.time() - began
            if applying is not None:
                print(f"  upload {uploaded:.1f} s; the final transaction (store writer held) about {time.time() - applying:.1f} s")
            assert item["state"] == "done" and item["applied"] == args.contacts, item
            rss = peak_rss_mb(proc.pid)
            print(f"import: {seconds:.1f} s ({args.contacts / seconds:,.0f} rows/s), server peak RSS {rss:.0f} MB"
                  f"   [target <= 60 s, <= 300 MB]")

            segment = {"all": [{"field": "誕生日", "part": "month", "op": "eq", "value": "this_month"},
                               {"field": "ポイント", "op": "gte", "value": 1000}]}
            times = []
            for _ in range(5):
                began = time.time()
                result = requests.post(base + "/v1/segments/count", json={"segment": segment}, headers=headers).json()
                times.append(time.time() - began)
                assert result["count"] == expected, (result, expected)
            # One pass counts every match and the sendable ones; a sample of 10 is read too.
            print(f"segment count (with sendable and a sample) over {args.contacts}: best {min(times):.2f} s, median {statistics.median(times):.2f} s"
                  f"   [target <= 1 s]")

            began, cpu = time.time(), cpu_seconds(proc.pid)
            response = requests.post(base + "/v1/campaigns", headers=headers, json={
                "name": "bench", "from": "news@acme.example", "subject": "{{氏名}}様", "text": "{{氏名}}様 {{ポイント}}点"})
            assert response.status_code == 201, response.text
            campaign = response.json()["id"]
            while True:
                state = requests.get(base + f"/v1/campaigns/{campaign}", headers=headers).json()
                if state["state"] == "sent":
                    break
                time.sleep(0.5)
            seconds, cpu = time.time() - began, cpu_seconds(proc.pid) - cpu
            queued = state["progress"]["queued"]
            assert queued == args.contacts, state
            print(f"campaign enqueue: {queued} recipients in {seconds:.1f} s = {queued / seconds:,.0f} recipients/s, "
                  f"server CPU {cpu / queued * 1e6:.0f} µs per recipient ({cpu / seconds * 100:.0f} % of a core), "
                  f"peak RSS {peak_rss_mb(proc.pid):.0f} MB   [target >= 20,000/s]")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()

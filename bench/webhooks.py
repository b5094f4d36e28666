#!/usr/bin/env python3
"""Events-out figures (docs/performance.md), run by bench/webhooks.sh on the release build.

  webhooks.py BIN WORK fanout EVENTS       # events/s and CPU per event of the webhook fan-out
  webhooks.py BIN WORK pending EVENTS      # RSS with EVENTS pending for a dead endpoint
  webhooks.py BIN WORK tracking SECONDS    # /t/o requests/s and latency under wrk
  webhooks.py BIN WORK e2e BATCHES         # API mail end to end (delivered to smtp-sink), without and with a webhook

The receiver is an asyncio HTTP/1.1 server that reads each body and counts the
event ids in it, so the receiver is not what is measured.
"""
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

API_PORT = 2850
SINK_PORT = 2851
RECEIVER_PORT = 2852
TICKS = os.sysconf("SC_CLK_TCK")


class Receiver:
    """Counts events (native format: one `"id":"ev_` per event) in a thread of its own."""

    def __init__(self, port):
        self.port = port
        self.events = 0
        self.requests = 0
        self.ids = set()
        self.first = None
        self.last = None
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))
                body = await reader.readexactly(length)
                self.ids.update(re.findall(rb'"id":"(ev_[0-9]+)"', body))
                self.events += body.count(b'"id":"ev_')
                self.requests += 1
                self.last = time.monotonic()
                self.first = self.first or self.last
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid):
    status = open(f"/proc/{pid}/status").read()
    return {name: int(re.search(rf"{name}:\s+([0-9]+) kB", status).group(1)) // 1024 for name in ("VmRSS", "VmHWM")}


class Relay:
    def __init__(self, binary, work, delivery=False, **webhooks):
        self.binary, self.work = binary, work
        self.data = os.path.join(work, "data")
        shutil.rmtree(self.data, ignore_errors=True)
        config = {"hostname": "hikyaku.bench", "logLevel": "warning", "api": {"listen": f"127.0.0.1:{API_PORT}"},
                  "admin": {"listen": ""}, "domains": {"requireVerified": False, "reverifySeconds": 0},
                  "smtp": {"listen": ["127.0.0.1:0"], "tlsListen": []},
                  "delivery": {"enabled": delivery, "smarthost": f"127.0.0.1:{SINK_PORT}", "allowNonPublicAddresses": True},
                  "webhooks": {"allowNonPublicAddresses": True, "allowPlainHttp": True, **webhooks},
                  "tracking": {"machineWindowSeconds": 0}}
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(config, f)
        self.cli("account", "create", "bench", "--domain", "bench.example")
        self.token = json.loads(self.cli("apikey", "create", "--account", "bench", "--scope", "admin", "--json"))["token"]
        self.proc = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "config.json"), "--data-dir", self.data],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(work, "err"), "ab"))
        while b"listening api" not in self.proc.stdout.readline():
            pass

    def cli(self, *args):
        return subprocess.run([self.binary, *args, "--data-dir", self.data], check=True, capture_output=True, text=True).stdout

    def call(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{API_PORT}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    def send_batches(self, count, html=False, tracking=None, offset=0):
        for batch in range(count):
            body = {"from": "shop@bench.example", "subject": "s", "text": "hello", "tags": ["bench"],
                    "recipients": [{"to": f"m{offset + batch * 1000 + i}@bench.example"} for i in range(1000)]}
            if html:
                body["html"] = '<p>hello <a href="https://shop.example/item">item</a></p>'
            if tracking:
                body["tracking"] = tracking
            self.call("POST", "/v1/messages", body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def fanout(binary, work, events):
    receiver = Receiver(RECEIVER_PORT)
    relay = Relay(binary, work)
    hook = relay.call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{RECEIVER_PORT}/", "events": ["accepted"], "enabled": False})
    relay.send_batches(events // 1000)
    time.sleep(2)  # the index catches up; the endpoint is still disabled
    before = cpu_seconds(relay.proc.pid)
    start = time.monotonic()
    relay.call("PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": True})
    while len(receiver.ids) < events:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(relay.proc.pid) - before
    rss = memory(relay.proc.pid)
    relay.stop()
    # From the first request to the last: the endpoint is picked up within a second of being enabled.
    sending = receiver.last - receiver.first
    print(f"fanout: {events:,} events in {receiver.requests} requests: {events / sending:,.0f} events/s from the first request to "
          f"the last ({sending:.2f} s; {elapsed:.2f} s from enabling); relay CPU {cpu:.2f} s = {cpu * 1000 / events:.4f} ms/event; "
          f"RSS {rss['VmRSS']} MB")


def pending(binary, work, events):
    relay = Relay(binary, work, minimumBackoffSeconds=1, maximumBackoffSeconds=2)
    # Nothing listens on port 9: every request fails, every event waits.
    relay.call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/", "events": ["accepted"]})
    start = time.monotonic()
    relay.send_batches(events // 1000)
    fed = time.monotonic() - start
    time.sleep(30)
    rss = memory(relay.proc.pid)
    hooks = relay.call("GET", "/v1/webhooks")["webhooks"]
    relay.stop()
    print(f"pending: {events:,} events for a dead endpoint (fed in {fed:.0f} s), after 30 s of retries: "
          f"RSS {rss['VmRSS']} MB, peak {rss['VmHWM']} MB; endpoint position {hooks[0]['position']}")


def tracking(binary, work, seconds):
    relay = Relay(binary, work)
    relay.call("POST", "/v1/messages", {"from": "shop@bench.example", "to": "t@bench.example", "subject": "s",
                                        "html": "<html><body><p>hi</p></body></html>", "tracking": {"opens": True}})
    time.sleep(1)
    message = json.loads(relay.cli("queue", "list", "--json"))[0]["id"]
    raw = subprocess.run([binary, "queue", "show", message, "--raw", "--data-dir", relay.data], capture_output=True).stdout
    text = raw.decode(errors="replace").replace("=\r\n", "").replace("=3D", "=")
    pixel = re.search(r'(/t/o/[A-Za-z0-9_-]+)', text).group(1)
    before = cpu_seconds(relay.proc.pid)
    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "-H",
                          "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
                          f"http://127.0.0.1:{API_PORT}{pixel}"], capture_output=True, text=True).stdout
    cpu = cpu_seconds(relay.proc.pid) - before
    time.sleep(1)
    counts = relay.call("GET", "/v1/stats")["engagement"]["opened"]
    relay.stop()
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    print(f"tracking: GET /t/o with wrk -t1 -c50 for {seconds} s: {rate:,.0f} requests/s, p50 {p50}, p99 {p99}; "
          f"relay CPU {cpu:.1f} s; opens logged: {counts['human_total']:,}")


def e2e(binary, work, batches):
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{SINK_PORT}", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if sink.poll() is not None:
        raise SystemExit("smtp-sink did not start")
    results = {}
    try:
        for label in ["without", "with", "without", "with"]:
            receiver = Receiver(RECEIVER_PORT + (1 if label == "with" else 0) + len(results) * 2)
            relay = Relay(binary, work, delivery=True)
            if label == "with":
                relay.call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{receiver.port}/"})
            start = time.monotonic()
            relay.send_batches(batches)
            while relay.cli("queue", "list").strip():
                time.sleep(0.2)
            elapsed = time.monotonic() - start
            if label == "with":
                deadline = time.monotonic() + 60
                while len(receiver.ids) < batches * 1000 * 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
            relay.stop()
            results.setdefault(label, []).append(batches * 1000 / elapsed)
            print(f"e2e {label} webhook: {batches * 1000} recipients accepted and delivered in {elapsed:.2f} s "
                  f"({batches * 1000 / elapsed:,.0f}/s); webhook events received: {len(receiver.ids):,}")
    finally:
        sink.terminate()
    best = {label: max(rates) for label, rates in results.items()}
    print(f"e2e: best without {best['without']:,.0f}/s, with {best['with']:,.0f}/s: ratio {best['with'] / best['without']:.3f}")


if __name__ == "__main__":
    binary, work, mode, amount = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"fanout": fanout, "pending": pending, "tracking": tracking, "e2e": e2e}[mode](binary, work, amount)

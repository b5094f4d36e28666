"""The kill loop: numbered messages through the relay to a sink while the relay
is killed with SIGKILL again and again, then restarted on the same data.

Each message is injected once (a message that got no 250 is not sent again),
so every copy the sink receives beyond the first is a redelivery, and every
acknowledged number the sink never receives is a lost message.

    HIKYAKU_BIN=.build/release/hikyaku python3 Tests/Interop/killloop.py --messages 40000 --kills 20

prints `killloop messages= kills= acknowledged= unacknowledged= delivered= lost= duplicates= duplicates_per_kill= seconds=`.
The interop test (test_durability.py) runs a shorter loop and asserts on the same figures."""
import argparse
import json
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sink import ScriptedSink  # noqa: E402


class Relay:
    def __init__(self, binary, directory, sink_port):
        self.binary = binary
        self.directory = directory
        self.config = os.path.join(directory, "config.json")
        with open(self.config, "w") as f:
            json.dump({"hostname": "relay.kill.test", "logLevel": "warning",
                       "smtp": {"listen": ["127.0.0.1:0"], "tlsListen": [], "trustedNetworks": ["127.0.0.0/8"],
                                "maxConnectionsPerClient": 1000},
                       "delivery": {"enabled": True, "smarthost": f"127.0.0.1:{sink_port}", "allowNonPublicAddresses": True,
                                    "minimumBackoffSeconds": 1, "maximumBackoffSeconds": 2},
                       "admin": {"listen": ""}, "api": {"listen": ""},
                       "domains": {"requireVerified": False, "reverifySeconds": 0}}, f)
        self.proc = None
        self.port = None
        self.log = open(os.path.join(directory, "server.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config, "--data-dir", self.directory + "/data"],
                                     stdout=subprocess.PIPE, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("relay exited during start")
            if line.startswith("hikyaku: listening smtp "):
                self.port = int(line.rsplit(":", 1)[1])
                return
        raise RuntimeError("relay did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def queue_empty(self):
        result = subprocess.run([self.binary, "queue", "list", "--data-dir", self.directory + "/data"],
                                capture_output=True, text=True, timeout=120)
        return result.returncode == 0 and result.stdout.strip() == ""


def run(binary, messages, kills, concurrency=8, sink_host="127.0.0.1", timeout=900, record_after_reply=False):
    """`record_after_reply`: the sink counts a message only after sending its 250 (see ScriptedSink), so that
    duplicates measure what the relay lost of replies it had read; otherwise they include the sink's own window."""
    started = time.time()
    sink = ScriptedSink(sink_host, port=0, record_after_reply=record_after_reply)
    sink_port = sink.listener.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="hikyaku-killloop-")
    relay = Relay(binary, directory, sink_port)
    relay.start()
    acknowledged = set()
    unacknowledged = set()
    lock = threading.Lock()
    next_number = [0]
    port = [relay.port]
    restarting = threading.Event()

    def take():
        with lock:
            if next_number[0] >= messages:
                return None
            next_number[0] += 1
            return next_number[0] - 1

    def inject():
        client = None
        number = take()
        while number is not None:
            try:
                while restarting.is_set():
                    time.sleep(0.01)
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", port[0], timeout=30)
                client.sendmail("app@sender.kill.test", [f"user{number % 50}@dest.kill.test"],
                                f"Subject: {number}\r\nX-Seq: {number}\r\n\r\nbody {number}\r\n".encode())
                with lock:
                    acknowledged.add(number)
            except (smtplib.SMTPException, OSError):
                # No 250 (or the session died): whether it was stored is unknown; it is not sent again.
                with lock:
                    unacknowledged.add(number)
                try:
                    if client:
                        client.close()
                except OSError:
                    pass
                client = None
                time.sleep(0.02)
            number = take()
        if client:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    threads = [threading.Thread(target=inject, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    # The kills are spread over the injection: one each time another share of the messages was acknowledged.
    done_kills = 0
    while done_kills < kills and any(t.is_alive() for t in threads):
        with lock:
            progress = len(acknowledged) + len(unacknowledged)
        if progress >= (done_kills + 1) * messages // (kills + 1):
            restarting.set()
            relay.kill()
            relay.start()
            port[0] = relay.port
            restarting.clear()
            done_kills += 1
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    # Everything acknowledged must arrive; then the queue must drain.
    deadline = time.time() + timeout
    while time.time() < deadline:
        received = {}
        for _, _, data in list(sink.messages):
            seq = int(data.split(b"X-Seq: ")[1].split(b"\r\n")[0])
            received[seq] = received.get(seq, 0) + 1
        if acknowledged <= set(received) and relay.queue_empty():
            break
        time.sleep(0.5)
    relay.stop()
    sink.stop()
    received = {}
    for _, _, data in sink.messages:
        seq = int(data.split(b"X-Seq: ")[1].split(b"\r\n")[0])
        received[seq] = received.get(seq, 0) + 1
    lost = sorted(acknowledged - set(received))
    duplicates = sum(count - 1 for count in received.values())
    return {"messages": messages, "kills": done_kills, "acknowledged": len(acknowledged),
            "unacknowledged": len(unacknowledged), "delivered": len(received), "lost": len(lost), "lost_sample": lost[:20],
            "duplicates": duplicates, "duplicates_per_kill": round(duplicates / max(1, done_kills), 2),
            "seconds": round(time.time() - started, 1), "directory": directory}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--record-after-reply", action="store_true",
                        help="the sink counts a message once its 250 is sent (measures the relay's own window)")
    arguments = parser.parse_args()
    binary = os.environ.get("HIKYAKU_BIN", ".build/release/hikyaku")
    result = run(binary, arguments.messages, arguments.kills, arguments.concurrency, record_after_reply=arguments.record_after_reply)
    print("killloop " + " ".join(f"{k}={v}" for k, v in result.items() if k not in ("lost_sample", "directory"))
          + f" sink={'record_after_reply' if arguments.record_after_reply else 'record_before_reply'}")
    if result["lost"]:
        print("lost:", result["lost_sample"])
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Latency from the relay's 250 to the receiving server's 250, at a steady rate.

An aiosmtpd server on SINK_PORT plays the destination and notes when each
message arrives; sender threads hand messages to the relay at RATE msg/s over
persistent SMTP sessions and note when each 250 came back. Both clocks are
this process's monotonic clock. Prints p50/p90/p99/max in milliseconds.

    python3 bench/latency.py RELAY_PORT SINK_PORT [RATE=200] [SECONDS=30]
"""
import smtplib
import sys
import threading
import time

from aiosmtpd.controller import Controller

relay_port, sink_port = int(sys.argv[1]), int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
senders = 4
arrived, accepted = {}, {}
lock = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic()
        seq = int(envelope.original_content.split(b"X-Seq: ")[1].split(b"\r\n")[0])
        with lock:
            arrived[seq] = now
        return "250 2.0.0 ok"


controller = Controller(Sink(), hostname="127.0.0.1", port=sink_port)
controller.start()
total = int(rate * seconds)
body = b"\r\n".join([b"x" * 76] * 24)  # about 1.9 KB in lines of 78 octets


def send(worker):
    interval = senders / rate
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", relay_port, timeout=30) as client:
        for n, seq in enumerate(range(worker, total, senders)):
            # A steady schedule, not as fast as possible.
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.sendmail("bench@sender.example", ["user@sink.example"],
                            b"Subject: latency\r\nX-Seq: %d\r\n\r\n%s\r\n" % (seq, body))
            with lock:
                accepted[seq] = time.monotonic()


threads = [threading.Thread(target=send, args=(w,)) for w in range(senders)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
deadline = time.monotonic() + 60
while len(arrived) < total and time.monotonic() < deadline:
    time.sleep(0.1)
controller.stop()
latencies = sorted((arrived[s] - accepted[s]) * 1000 for s in accepted if s in arrived)
missing = total - len(latencies)


def percentile(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]


print(f"latency rate={rate:g}/s messages={total} delivered={len(latencies)} missing={missing} "
      f"p50_ms={percentile(50):.1f} p90_ms={percentile(90):.1f} p99_ms={percentile(99):.1f} max_ms={latencies[-1]:.1f}")

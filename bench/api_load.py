#!/usr/bin/env python3
"""Load for the HTTP API (bench/api.sh).

  api_load.py batch PORT TOKEN REQUESTS CLIENTS   # POST /v1/messages, 1,000 personalised recipients each
  api_load.py single PORT TOKEN SECONDS CLIENTS   # one message per request, CLIENTS at once

Each client keeps one HTTP/1.1 connection open (asyncio streams, no GIL-bound
threads), so the client is not what is measured. A 202 means the messages
are durable in the spool; every other status is counted as an error.
"""
import asyncio
import json
import sys
import time


async def post(reader, writer, port, token, body):
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, token.encode(), len(body)) + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def batch_body(offset):
    return json.dumps({
        "from": "Shop <shop@bench.example>", "tags": ["bench"],
        "subject": "{{name}}様、今月のポイントのお知らせ",
        "text": "{{name}}様\n\n現在のポイントは{{points}}ポイントです。\n有効期限は{{expires}}です。\n",
        "html": "<p>{{name}}様</p><p>現在のポイントは<b>{{points}}</b>ポイントです。有効期限は{{expires}}です。</p>",
        "recipients": [{"to": f"member{offset + i}@bench.example",
                        "data": {"name": f"会員{offset + i}", "points": (offset + i) % 5000, "expires": "2026-12-31"}}
                       for i in range(1000)]}).encode()


async def batch(port, token, requests, clients):
    bodies = [batch_body(i * 1000) for i in range(min(requests, 8))]
    queue = asyncio.Queue()
    for number in range(requests):
        queue.put_nowait(number)
    errors = 0

    async def client():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not queue.empty():
            number = queue.get_nowait()
            if await post(reader, writer, port, token, bodies[number % len(bodies)]) != 202:
                errors += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    recipients = (requests - errors) * 1000
    print(f"batch requests={requests} clients={clients} recipients={recipients} errors={errors} "
          f"seconds={elapsed:.2f} recipients_per_s={recipients / elapsed:.0f}")


async def single(port, token, seconds, clients):
    body = json.dumps({"from": "shop@bench.example", "to": "user@bench.example", "subject": "ご注文確認",
                       "text": "ご注文ありがとうございました。\n" * 5}).encode()
    latencies = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            status = await post(reader, writer, port, token, body)
            latencies.append(time.perf_counter() - begin)
            if status != 202:
                errors += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"single clients={clients} requests={len(latencies)} errors={errors} seconds={elapsed:.2f} "
          f"requests_per_s={len(latencies) / elapsed:.0f} p50_ms={pick(0.5):.2f} p90_ms={pick(0.9):.2f} "
          f"p99_ms={pick(0.99):.2f} max_ms={latencies[-1] * 1000:.2f}")


if __name__ == "__main__":
    mode, port, token, amount, clients = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    asyncio.run((batch if mode == "batch" else single)(port, token, amount, clients))

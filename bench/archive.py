#!/usr/bin/env python3
"""Disk cost of the message archive (spool/archive.sqlite) per million messages.

Has a hikyaku server build N personalised messages through the API (text and
HTML, Japanese, a DKIM signature: a typical transactional mail), reads back
the exact stored bytes (`hikyaku queue show --raw`), and stores them as the
archive does: zlib level 6 in a SQLite table of the same shape. Prints the
original and stored bytes per message and the archive's size per million.

    bench/archive.py [--messages 2000]
"""
import argparse
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import zlib

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("HIKYAKU_BIN", os.path.join(ROOT, ".build", "release", "hikyaku"))

HTML = """<html><body><p>{{name}} 様</p><p>いつもご利用ありがとうございます。ご注文番号 {{order}} の商品を発送いたしました。</p>
<table><tr><td>商品</td><td>{{item}}</td></tr><tr><td>数量</td><td>{{count}}</td></tr><tr><td>お届け予定</td><td>{{date}}</td></tr></table>
<p>配送状況は <a href="https://shop.acme.example/orders/{{order}}">こちら</a> からご確認いただけます。</p>
<p>今後とも Acme Shop をよろしくお願いいたします。</p><hr><p>Acme Shop カスタマーサポート support@acme.example</p></body></html>"""
TEXT = """{{name}} 様

いつもご利用ありがとうございます。ご注文番号 {{order}} の商品を発送いたしました。
商品: {{item}}  数量: {{count}}  お届け予定: {{date}}
配送状況: https://shop.acme.example/orders/{{order}}

Acme Shop カスタマーサポート support@acme.example"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hikyaku-bench-archive-") as data:
        config = os.path.join(data, "config.json")
        json.dump({"smtp": {"listen": ["127.0.0.1:0"], "tlsListen": []}, "admin": {"listen": ""}, "api": {"listen": "127.0.0.1:0"},
                   "delivery": {"enabled": False}, "domains": {"requireVerified": False}}, open(config, "w"))
        run = lambda *a: subprocess.run([BINARY, *a, "--data-dir", data, "--config", config], check=True, capture_output=True)
        run("account", "create", "acme", "--domain", "acme.example")
        run("domain", "add", "acme.example", "--account", "acme")
        token = json.loads(run("apikey", "create", "--account", "acme", "--json").stdout)["token"]
        proc = subprocess.Popen([BINARY, "serve", "--config", config, "--data-dir", data], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        port = None
        while port is None:
            line = proc.stdout.readline().decode()
            if line.startswith("hikyaku: listening api "):
                port = int(line.rsplit(":", 1)[1])
        ids = []
        try:
            for start in range(0, args.messages, 500):
                recipients = [{"to": f"customer{n}@example.jp", "data": {"name": f"山田 太郎{n}", "order": f"A{100000 + n}",
                                                                         "item": "ワイヤレスイヤホン", "count": n % 3 + 1, "date": "12月8日"}}
                              for n in range(start, min(start + 500, args.messages))]
                response = requests.post(f"http://127.0.0.1:{port}/v1/messages", timeout=60, headers={"Authorization": "Bearer " + token},
                                         json={"from": "Acme Shop <shop@acme.example>", "subject": "{{name}} 様 ご注文の商品を発送しました",
                                               "text": TEXT, "html": HTML, "recipients": recipients})
                assert response.status_code == 202, response.text
                ids += [m["id"] for m in response.json()["messages"]]
            time.sleep(1)
        finally:
            proc.terminate()
            proc.wait()
        archive = os.path.join(data, "measure.sqlite")
        db = sqlite3.connect(archive)
        db.execute("CREATE TABLE archived_message (id TEXT PRIMARY KEY NOT NULL, archived_at REAL NOT NULL, size INTEGER NOT NULL, "
                   "data BLOB NOT NULL)")
        db.execute("CREATE INDEX archived_message_at ON archived_message(archived_at)")
        original = stored = 0
        for message_id in ids:
            raw = subprocess.run([BINARY, "queue", "show", message_id, "--raw", "--data-dir", data], check=True, capture_output=True).stdout
            packed = zlib.compress(raw, 6)
            original += len(raw)
            stored += len(packed)
            db.execute("INSERT INTO archived_message VALUES (?, ?, ?, ?)", (message_id, time.time(), len(raw), packed))
        db.commit()
        db.execute("VACUUM")
        db.close()
        size = os.path.getsize(archive)
        n = len(ids)
        print(f"messages: {n:,}; original {original / n:,.0f} B each, compressed {stored / n:,.0f} B each "
              f"(ratio {original / stored:.2f}); archive file {size / n:,.0f} B per message")
        print(f"per million messages: {size / n * 1e6 / 1e9:.2f} GB on disk (original bytes: {original / n * 1e6 / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()

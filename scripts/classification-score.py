#!/usr/bin/env python3
"""Scores `hikyaku classify` on the labelled corpus of real replies
(Tests/ClassificationCorpus: tuning.jsonl, held-out.jsonl).

For each set it prints how many replies got their label, and how many
replies that say nothing against the address (about the sender, the
content, a rate, a filter...) were classified as a bad address
(invalid_recipient or inactive_mailbox): the error that removes a good
recipient for good. `--misses` lists the replies classified wrongly (for
the tuning set; keep the held-out set's out of sight while writing rules).

    scripts/classification-score.py [--binary PATH] [--set tuning|held-out|all] [--misses] [--host-only]

`--host-only` passes one host (the MX, else the domain) as `--host`, as the
classifier's command line took it before `--mx` and `--domain`.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Tests", "ClassificationCorpus")
ADDRESS = {"invalid_recipient", "inactive_mailbox"}


def classify(binary, record, host_only):
    code = record["code"]
    if code is None:
        # A few sources give only the enhanced code: its class stands for the reply's.
        code = 450 if (record["enhanced"] or "5").startswith("4") else 550
    command = [binary, "classify", "--code", str(code), "--text", record["text"], "--json"]
    if record["enhanced"]:
        command += ["--enhanced", record["enhanced"]]
    if record["command"]:
        command += ["--command", record["command"]]
    if host_only:
        host = record["mx"] or record["domain"]
        if host:
            command += ["--host", host]
    else:
        if record["mx"]:
            command += ["--mx", record["mx"]]
        if record["domain"]:
            command += ["--domain", record["domain"]]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.environ.get("HIKYAKU_BIN", os.path.join(ROOT, ".build", "release", "hikyaku")))
    parser.add_argument("--set", default="all", choices=["tuning", "held-out", "all"])
    parser.add_argument("--misses", action="store_true")
    parser.add_argument("--host-only", action="store_true")
    args = parser.parse_args()
    failed = False
    for name in (["tuning", "held-out"] if args.set == "all" else [args.set]):
        records = [json.loads(line) for line in open(os.path.join(CORPUS, name + ".jsonl"), encoding="utf-8")]
        right = 0
        suppressing = []
        misses = []
        for record in records:
            result = classify(args.binary, record, args.host_only)
            if result["category"] == record["category"]:
                right += 1
            else:
                misses.append((record, result))
                if result["category"] in ADDRESS and record["category"] not in ADDRESS | {"bad_domain", "other"}:
                    suppressing.append((record, result))
        print(f"{name}: {right}/{len(records)} right ({100 * right / len(records):.1f} %), "
              f"{len(suppressing)} classified as a bad address that say nothing against it")
        if args.misses and name == "tuning" or args.misses and args.set == name:
            for record, result in misses:
                print(f"  {record['category']:>17} <- {result['category']:<17} {result['rule']:<28} "
                      f"{record['code']} {record['enhanced'] or ''} [{record['command'] or '-'}] "
                      f"{record['mx'] or record['domain'] or ''}: {record['text'][:150]}")
        failed = failed or bool(suppressing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

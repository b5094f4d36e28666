#!/usr/bin/env python3
"""Merges labelled replies into a tuning part and a held-out part.

    scripts/split-corpus.py OUT_TUNING OUT_HELD_OUT PERCENT_HELD_OUT NEW.jsonl... -- EXISTING.jsonl...

Records of the NEW files whose text (case and spacing aside) is already in an
EXISTING file, or earlier in the NEW ones, are left out. The split is fixed by
a hash of the wording (the text with its addresses, hosts and numbers masked,
as scripts/sisimai-corpus.py does), so that one wording with other addresses
never lands on both sides.
"""
import hashlib, importlib.util, json, os, re, sys

# The wording (the mask) is scripts/sisimai-corpus.py's, so that both corpora are split alike.
_spec = importlib.util.spec_from_file_location("sisimai_corpus", os.path.join(os.path.dirname(__file__), "sisimai-corpus.py"))
_sisimai_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sisimai_corpus)
wording = _sisimai_corpus.wording


def norm(text):
    return re.sub(r"\s+", " ", text).strip().lower()


def main():
    tuning_path, held_out_path, percent = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = sys.argv[4:]
    cut = rest.index("--") if "--" in rest else len(rest)
    new, existing = rest[:cut], rest[cut + 1:]
    seen = {norm(json.loads(line)["text"]) for path in existing for line in open(path, encoding="utf-8") if line.strip()}
    counts = [0, 0]
    with open(tuning_path, "w", encoding="utf-8") as tuning, open(held_out_path, "w", encoding="utf-8") as held_out:
        for path in new:
            for line in open(path, encoding="utf-8"):
                if not line.strip():
                    continue
                record = json.loads(line)
                if norm(record["text"]) in seen:
                    continue
                seen.add(norm(record["text"]))
                aside = int(hashlib.sha256(wording(record["text"]).encode()).hexdigest(), 16) % 100 < percent
                (held_out if aside else tuning).write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[aside] += 1
    print(f"tuning {counts[0]}, held out {counts[1]}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Trains the classifier's learned reading from the labelled corpus.

    scripts/train-classifier.py OUT.json CORPUS.jsonl...

Writes `Sources/Relay/Resources/classification-model.json`: a multinomial
logistic regression over the words of each reply (docs/classification.md,
"The learned reading"). Needs scikit-learn (pip install scikit-learn); the
relay only reads the file it writes.

The words are read exactly as `LearnedReading` reads them in Swift: the
first 512 bytes, ASCII case folded; runs of letters, digits and `._%+@-`; a run holding `@` is an
address, one of digits and dots a number, one with a dot a host; the rest are
split at `_%+-`, and a word with a digit is a number. The features are the
words, each pair of neighbouring words, the reply code and its class, the
enhanced code's subject and detail, and the command. A feature seen in fewer
than two replies is left out. The vector is scaled to unit length.

`checks` holds replies with the probabilities this script computes from the
written (rounded) weights, so that a test can hold the Swift reading to them.
"""
import json, math, re, sys

MINIMUM_REPLIES = 2
REGULARISATION = 10.0
SCALE = 1000  # weights are written as integers in thousandths
# A less likely reading gives way to the reply's codes. Scored untouched (docs/classification.md), 0.3 kept
# what the reading gains; 0.5 lost one to two points of it.
LEAST_PROBABILITY = 0.3
CHUNK = re.compile(rb"[a-z0-9._%+@-]+")
SPLIT = re.compile(rb"[_%+-]+")
READ_BYTES = 512  # LearnedReading.readBytes: the words of a reply are read this far


def words(text):
    out = []
    for chunk in CHUNK.findall(text.encode("utf-8").lower()[:READ_BYTES]):
        chunk = chunk.strip(b"._%+-")
        if not chunk:
            continue
        digits = any(c in b"0123456789" for c in chunk)
        letters = any(97 <= c <= 122 for c in chunk)
        if b"@" in chunk:
            out.append("@addr")
        elif digits and not letters:
            out.append("0")
        elif b"." in chunk:
            out.append("@host")
        else:
            for word in SPLIT.split(chunk):
                if word:
                    out.append("0" if any(c in b"0123456789" for c in word) else word.decode())
    return out


def reply_code(record):
    if record.get("code"):
        return int(record["code"])
    match = re.fullmatch(r"([245])\.[0-9]{1,3}\.[0-9]{1,3}", record.get("enhanced") or "")
    return int(match.group(1)) * 100 + 50 if match else 550


def features(record):
    w = words(record["text"])
    found = set(w)
    found.update(a + " " + b for a, b in zip(w, w[1:]))
    code = str(reply_code(record))
    found.update(["#code %d" % (int(code) // 100), "#code " + code])
    match = re.fullmatch(r"[245]\.([0-9]{1,3})\.([0-9]{1,3})", record.get("enhanced") or "")
    if match:
        found.update(["#enhanced %d" % int(match.group(1)), "#enhanced %d.%d" % (int(match.group(1)), int(match.group(2)))])
    found.add("#command " + (record.get("command") or "none").upper())
    return found


def probabilities(model, record):
    """What the Swift reading computes, from the written weights."""
    index = model["index"]
    known = [index[f] for f in features(record) if f in index]
    if not any(not f.startswith("#") for f in features(record) if f in index):
        return None  # it reads words: codes alone are the code rules' to read
    classes = len(model["classes"])
    scale = 1 / math.sqrt(len(known))
    scores = [model["intercepts"][k] / SCALE for k in range(classes)]
    for row in known:
        for k in range(classes):
            scores[k] += model["weights"][row * classes + k] / SCALE * scale
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def main():
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    # In name order whatever the order given, so that the same corpus always gives the same file.
    out, paths = sys.argv[1], sorted(sys.argv[2:])
    records = [json.loads(line) for path in paths for line in open(path, encoding="utf-8") if line.strip()]
    counts = {}
    for record in records:
        for feature in features(record):
            counts[feature] = counts.get(feature, 0) + 1
    kept = [{f: 1 for f in features(r) if counts[f] >= MINIMUM_REPLIES} for r in records]
    vectorizer = DictVectorizer(sort=True)
    matrix = normalize(vectorizer.fit_transform(kept))
    fit = LogisticRegression(C=REGULARISATION, max_iter=10000).fit(matrix, [r["category"] for r in records])
    names = vectorizer.get_feature_names_out().tolist()
    classes = fit.classes_.tolist()
    weights = [round(float(fit.coef_[k][row]) * SCALE) for row in range(len(names)) for k in range(len(classes))]
    model = {
        "about": "Learned reading of the classifier (scripts/train-classifier.py, docs/classification.md): "
                 "%d labelled replies, %d features, logistic regression with C=%g; weights in thousandths." % (len(records), len(names), REGULARISATION),
        "classes": classes,
        "intercepts": [round(float(b) * SCALE) for b in fit.intercept_],
        "features": names,
        "weights": weights,
        "leastProbability": LEAST_PROBABILITY,
    }
    model["index"] = {name: row for row, name in enumerate(names)}
    checks = []
    # Every 75th reply, the replies longer than the reading reads, and one padded far beyond it.
    longest = max(records, key=lambda r: len(r["text"].encode("utf-8")))
    padded = dict(longest, text=longest["text"] + " see https://postmaster.example.net/errors?id=0123456789abcdef" * 20)
    for record in records[::75] + [r for r in records if len(r["text"].encode("utf-8")) > READ_BYTES] + [padded]:
        p = probabilities(model, record)
        if p:
            checks.append({"text": record["text"], "code": reply_code(record), "enhanced": record.get("enhanced"),
                           "command": record.get("command"), "probabilities": [round(x, 6) for x in p]})
    del model["index"]
    model["checks"] = checks
    with open(out, "w", encoding="utf-8") as file:
        json.dump(model, file, ensure_ascii=False, separators=(",", ":"))
        file.write("\n")
    print("%d replies, %d features, %d classes, %d checks" % (len(records), len(names), len(classes), len(checks)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turns sisimai's dump of its public sample bounces into labelled replies.

    perl -Ilib -MSisimai -e 'print Sisimai->dump("set-of-emails/maildir/bsd")' > dump.json
    scripts/sisimai-corpus.py dump.json OUT_TUNING OUT_HELD_OUT existing.jsonl...

The label is sisimai's reason (asserted by its t/*.t tests for these files),
mapped onto Hikyaku's categories; replies that are not an SMTP reply (queue
expiry, network errors, feedback reports, undecided) are left out, and so is
any text already in the existing corpus files.

A reply whose text has no enhanced code takes the report's Status field
(sisimai's `deliverystatus`), as Hikyaku does when it reads a DSN.

The split is fixed by a hash of the text with its addresses, hosts and
numbers masked, so that the same wording with other addresses never lands
in both parts: 35 % of the wordings are held out.
"""
import hashlib, json, re, sys

MAP = {
    "userunknown": "invalid_recipient", "hasmoved": "invalid_recipient",
    "suspend": "inactive_mailbox", "mailboxfull": "mailbox_full",
    "filtered": "filtered",
    "rejected": "policy_block", "blocked": "policy_block", "authfailure": "policy_block",
    "policyviolation": "policy_block", "requireptr": "policy_block", "securityerror": "policy_block",
    "badreputation": "policy_block", "failedstarttls": "policy_block",
    "spamdetected": "spam_block", "virusdetected": "spam_block",
    "contenterror": "protocol_error", "notcompliantrfc": "protocol_error", "syntaxerror": "protocol_error",
    "hostunknown": "bad_domain", "notaccept": "bad_domain",
    "norelaying": "relay_denied",
    "toomanyconn": "rate_limited", "speeding": "rate_limited", "ratelimited": "rate_limited",
    "mesgtoobig": "message_too_large", "exceedlimit": "message_too_large", "emailtoolarge": "message_too_large",
    "systemerror": "other", "systemfull": "other",
}

def norm(text):
    return re.sub(r"\s+", " ", text).strip().lower()

def main():
    dump = json.load(open(sys.argv[1]))
    seen = set()
    for path in sys.argv[4:]:
        for line in open(path):
            if line.strip():
                seen.add(norm(json.loads(line)["text"]))
    out = []
    for item in dump:
        category = MAP.get(item["reason"])
        text = item["diagnosticcode"] or ""
        if category is None or not text.strip():
            continue
        code, enhanced = None, None
        # What an MTA wrapped round the reply ("host X[addr] said: ", "(in reply to RCPT TO command)").
        text = re.sub(r"^\s*host \S+(\s*\[[^\]]*\])? said:\s*", "", text)
        text = re.sub(r"\s*\(in reply to [^)]*\)\s*$", "", text)
        match = re.match(r"^\s*([245]\d\d)[ -]", text)
        if match:
            code = int(match.group(1)); text = text[match.end():]
        match = re.match(r"^\s*#?([245]\.\d{1,3}\.\d{1,3})\b\s*", text)
        if match:
            enhanced = match.group(1); text = text[match.end():]
        # No code in the reply: the report's own Status field, as Hikyaku reads a DSN (not one of
        # sisimai's pseudo codes, X.0.9yy, which it makes up from its reason).
        status = item.get("deliverystatus") or ""
        if enhanced is None and re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status) and not re.fullmatch(r"\d\.0\.9\d\d", status):
            enhanced = status
        if code is None:
            if not str(item["replycode"]).isdigit():
                continue
            code = int(item["replycode"])
        if code < 400:
            continue
        # A multi-line reply joined: each line's own code prefix dropped, as the delivery client does.
        # (a line's enhanced code stays: the client keeps it in the line's text).
        text = re.sub(r"\s[245]\d\d[- ](?=[245]\.\d{1,3}\.\d{1,3}\s)", " ", text)
        text = re.sub(r"\s[245]\d\d-", " ", text)
        text = re.sub(r"\s+", " ", text).strip()
        if len(text) < 4:
            continue
        key = (norm(text), code, item["smtpcommand"] or None, item["destination"])
        if norm(text) in seen or key in {o[0] for o in out}:
            continue
        out.append((key, {
            "text": text, "code": code, "enhanced": enhanced, "command": item["smtpcommand"] or None,
            "mx": item["rhost"] or None, "domain": item["destination"] or None, "category": category,
            "source": "github.com/sisimai/set-of-emails " + item["origin"].replace("set-of-emails/", ""),
            "why": f"sisimai's reason '{item['reason']}' (asserted by p5-sisimai t/*.t for this file), mapped to {category}.",
        }))
    with open(sys.argv[2], "w") as tuning, open(sys.argv[3], "w") as held_out:
        for _, record in out:
            part = held_out if int(hashlib.sha256(wording(record["text"]).encode()).hexdigest(), 16) % 100 < 35 else tuning
            part.write(json.dumps(record, ensure_ascii=False) + "\n")

def wording(text):
    text = text.lower()
    text = re.sub(r"<[^>]*>", "<>", text)
    text = re.sub(r"[\w.+-]+@[\w.-]+", "@", text)
    text = re.sub(r"\b[\w-]+(\.[\w-]+)+\b", "h", text)
    text = re.sub(r"\d+", "0", text)
    text = re.sub(r"[^a-z0 ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Makes the shipped rules' `sisimai-*` text rules from Sisimai's reason phrase lists.

    scripts/sisimai-phrases.py P5_SISIMAI_CHECKOUT Sources/Relay/Resources/classification-rules.json

Sisimai (github.com/sisimai/p5-sisimai, BSD 2-clause) keeps, for each bounce
reason, the phrases its author has seen servers send for it
(lib/Sisimai/Reason/*.pm: `$index`, and `$pairs` of two phrases in order).
Those lists are the largest public record of what servers say; this script
turns them into rules of the `text` stage, one per reason, placed after the
hand-written text rules: first every reason about the sender, the content, a
rate or the recipient's filter, then those about the address (Suspend,
UserUnknown, HostUnknown), so that a reply naming both is not read as a bad
address — Sisimai itself takes an address reading back when a sender-side
list matches too. The rules were made from p5-sisimai v5.1.0p3 (commit
21cfb93).

The lists are curated here, not taken whole: each phrase below in DROP is left
out (a wrapper a sending MTA adds, a sender-side failure, or a phrase that
Hikyaku's own rules read differently, with the reason), and MOVE gives a phrase
another category than its list's; DROP_PAIRS and PAIR_PHRASES do the same for
pairs, which otherwise become `first.{0,40}second`. Entries of a pair list
that are not pairs (three phrases) are left out.
Re-run after editing; the rules file is rewritten in place, other rules kept.
"""
import json, re, sys

# Sisimai's reason → Hikyaku's category, in the order the rules are read
# (Sisimai's own order of reasons, Reason.pm's first list, then the rest).
ORDER = [
    ("MailboxFull", "mailbox_full", False), ("MesgTooBig", "message_too_large", True),
    ("ExceedLimit", "message_too_large", True), ("NoRelaying", "relay_denied", True),
    ("AuthFailure", "policy_block", None), ("Filtered", "filtered", True),
    ("RequirePTR", "policy_block", None), ("NotCompliantRFC", "protocol_error", None),
    ("BadReputation", "policy_block", None), ("Rejected", "policy_block", None),
    ("SpamDetected", "spam_block", None), ("VirusDetected", "spam_block", None),
    ("Speeding", "rate_limited", False), ("TooManyConn", "rate_limited", False),
    ("Blocked", "policy_block", None), ("PolicyViolation", "policy_block", None),
    ("SecurityError", "policy_block", None), ("ContentError", "protocol_error", None),
    ("NotAccept", "bad_domain", True),
    # About the address: after everything else.
    ("Suspend", "inactive_mailbox", True), ("UserUnknown", "invalid_recipient", True),
    ("HostUnknown", "bad_domain", True),
    ("SystemError", "other", None),
]

DROP = {
    # What a sending MTA wraps round a reply, or writes itself: not a server's words.
    "recipient address rejected. (in reply to rcpt to command)", " said: 550 blocked",
    "smtp error from remote mail server after initial connection:", "554 5.7.0 reject, id=",
    "connection dropped", "connection refused by", "connection reset by peer",
    "connection was dropped by remote host", "we have already made numerous attempts to deliver this message",
    "name or service not known", "host unreachable", "smtp protocol returned a permanent error",
    "no route for current request", "transaction failed ",
    # Too general to decide alone; Hikyaku's generic rules and codes read these.
    "address rejected", "does not exist.", "the following recipients was undeliverable", "not email addresses",
    "service not available, closing transmission channel", "error: no valid recipients from ",
    "domain does not exist:", "mx records for ", "does not exist e2110", "mail receiving disabled",
    "message given low priority", "verification failure", "address rejected.",
    "message filtered",  # says nothing of why (docs/classification.md: such replies are `other`)
    # Read otherwise by Hikyaku's own text rules (docs/classification.md).
    "recipient address rejected: access denied",  # Microsoft's directory edge block: recipient-access-denied
    # RFC 5321's own text for any 550, a generic prefix (docs/classification.md); Microsoft's whole-reply use of it
    # is microsoft-mailbox-unavailable.
    "requested action not taken: mailbox unavailable",
    # Tencent's rate limit (tencent-rate), not a suspended mailbox.
    "mailbox unavailable or access denied",
    # Said of the sender as often as of the recipient ("Sender address unknown", "your account has been suspended",
    # "sender domain must exist"); the generic rules read them after the sender's words.
    "address unknown", "bad address", "invalid address", "has been suspended", "domain must exist",
    "that domain or user isn't in my list of allowed rcpthosts",  # qmail: relay_denied
    "sorry, that domain isn't in my list of allowed rcpthosts",
    " temporary locked",  # "temporary locked. Please try again later": a rate
    "unroutable address", "unrouteable address",  # Exim's for an address no router accepts: user-unknown
    "user not found",  # Mail.ru's filter: the same words are an unknown user everywhere else
    "bounced address", "spam reporting address",  # SendGrid's own suppression list, not a receiver's reply
    "email address is not verified.", "insecure mail relay",  # SES's account state, not a relay refusal
}
# Pairs whose gap is a hyphen or a word: written as the phrases they stand for (a phrase costs nothing
# more; a pair is a regular expression, run whenever its second half is in the reply).
PAIR_PHRASES = {("bad", "recipient"): "bad (destination )?recipient", ("non", "existent user"): "non-?existent user",
                ("unknown e", "mail address"): "unknown e-?mail address", ("unknown local", "part"): "unknown local(-| )?part",
                ("spam ", " exceeded"): "spam (score|threshold|level|limit|points) (has been |was )?exceeded"}
DROP_PAIRS = {("mailbox ", "unavailable or access denied"), ("<", "> not found"),("<", ">... blocked by "), ("said: 550-5.1.1 ", " user unknown "), ("said: 550 5.1.1 ", " user unknown "),
              ("greylisted", " please try again in"), ("could not be delivered for", " days")}

MOVE = {
    "due to extended inactivity new mail is not currently being accepted for this mailbox": "inactive_mailbox",
    "sender domain listed at ": "policy_block", "sending address not accepted due to spam filter": "policy_block",
    "too many spam complaints": "policy_block", "blocked for abuse. see http://att.net/blocks": "policy_block",
    "denied due to spam list": "policy_block", "listed in work.drbl.imedia.ru": "policy_block",
    "an illegal attachment on your message": "spam_block",
    "we do not accept messages containing images or other attachments": "spam_block",
    "this message was blocked because its content presents a potential": "spam_block",
    "executable files are not allowed in compressed files": "spam_block",
    "because the sender isn't on the recipient's list of senders to accept mail from": "filtered",
    "mailbox is inactive": "inactive_mailbox",
    "you're using a mass mailer": "spam_block", "protocol violation": "protocol_error", "header error": "protocol_error",
}


def lists(checkout, reason):
    text = open(f"{checkout}/lib/Sisimai/Reason/{reason}.pm", encoding="utf-8").read()
    body = re.search(r"sub match \{(.*?)\n\}", text, re.S).group(1)
    index, pairs = [], []
    quoted = r"(['\"])((?:\\.|(?!\1).)*)\1"
    for block in re.finditer(r"state \$(\w+)\s*=\s*\[(.*?)\n\s*\];", body, re.S):
        if block.group(1) == "isnot":
            continue
        if block.group(1) == "pairs":
            for entry in re.finditer(r"\[([^\[\]]*)\]", block.group(2)):
                parts = [m.group(2) for m in re.finditer(quoted, entry.group(1))]
                if len(parts) == 2:
                    pairs.append(tuple(parts))
        else:
            index += [m.group(2) for m in re.finditer(quoted, block.group(2))]
    return index, pairs


def normal(phrase):
    """Lower case, Perl's escaped quote unescaped, runs of spaces one (Sisimai's own spacing is not the servers')."""
    return re.sub(r" {2,}", " ", phrase.lower().replace("\\'", "'"))


def escape(phrase):
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", phrase)


def main():
    checkout, path = sys.argv[1], sys.argv[2]
    rules = json.load(open(path, encoding="utf-8"))
    kept = [r for r in rules["rules"] if not r["id"].startswith("sisimai-")]
    made, seen = {}, set()
    for reason, category, hard in ORDER:
        index, pairs = lists(checkout, reason)
        for phrase in index:
            # The reply code and enhanced code are not in the text the rules read.
            phrase = re.sub(r"^(#?[245]\d\d |#?[245]\.\d{1,3}\.\d{1,3} )+", "", normal(phrase))
            if phrase in DROP or phrase in seen or len(phrase.strip()) < 6:
                continue
            seen.add(phrase)
            target = MOVE.get(phrase, category)
            made.setdefault((target, reason), []).append(escape(phrase))
        for first, second in pairs:
            if (first, second) in DROP_PAIRS:
                continue
            pattern = PAIR_PHRASES.get((first, second)) or f"{escape(normal(first))}.{{0,40}}{escape(normal(second))}"
            made.setdefault((category, reason), []).append(pattern)
    hardness = {category: hard for _, category, hard in ORDER}
    hardness.update({"inactive_mailbox": True, "spam_block": None, "policy_block": None, "protocol_error": None})
    generated = []
    for (category, reason), patterns in made.items():
        rule = {"id": f"sisimai-{reason.lower()}" + ("" if dict((r, c) for r, c, _ in ORDER)[reason] == category
                                                       else f"-{category.replace('_', '-')}"),
                "stage": "text", "category": category}
        if hardness.get(category) is not None:
            rule["hard"] = hardness[category]
        rule["text"] = patterns
        generated.append(rule)
    # After the last hand-written text rule.
    last_text = max(i for i, r in enumerate(kept) if r.get("stage") == "text")
    rules["rules"] = kept[:last_text + 1] + generated + kept[last_text + 1:]
    with open(path, "w", encoding="utf-8") as out:
        out.write(format_rules(rules))
    print(f"{len(generated)} rules, {sum(len(r['text']) for r in generated)} patterns")


def format_rules(rules):
    """One rule per line, as the file is written by hand."""
    lines = ["{", ' "prefixes": ' + json.dumps(rules["prefixes"], ensure_ascii=False) + ",", ' "rules": [']
    body = [json.dumps(r, ensure_ascii=False) for r in rules["rules"]]
    lines += ["  " + line + ("," if i < len(body) - 1 else "") for i, line in enumerate(body)]
    lines += [" ]", "}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

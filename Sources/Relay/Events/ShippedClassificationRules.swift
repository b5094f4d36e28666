/// The classification rules shipped with Hikyaku, as data: the same JSON
/// shape as an operator's `classification.rulesFile` (docs/classification.md).
/// Provider rules come first, then generic reply texts, then RFC 3463
/// enhanced codes, then failures that had no reply.
enum ShippedClassificationRules {
    static func rules() throws -> [ClassificationRule] {
        struct File: Decodable { var rules: [ClassificationRule] }
        return try JSONDecoder().decode(File.self, from: Data(json.utf8)).rules
    }

    static let json = #"""
{
 "rules": [
  {
   "id": "docomo-user-unknown",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.1.1"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-5.0.911",
   "category": "invalid_recipient",
   "hard": true,
   "text": [
    "5\\.0\\.911"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-filtered",
   "category": "filtered",
   "hard": true,
   "enhanced": [
    "5.2.0"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-unknown-user",
   "category": "invalid_recipient",
   "hard": true,
   "codes": [
    550
   ],
   "text": [
    "unknown user"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-too-much-data",
   "category": "mailbox_full",
   "hard": false,
   "codes": [
    552
   ],
   "text": [
    "too much mail data"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-too-many-recipients",
   "category": "rate_limited",
   "hard": false,
   "codes": [
    552
   ],
   "text": [
    "too many recipients"
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-syntax",
   "category": "protocol_error",
   "hard": true,
   "codes": [
    503,
    504
   ],
   "hosts": [
    "docomo.ne.jp"
   ]
  },
  {
   "id": "docomo-5.0.0-rcpt",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.0.0"
   ],
   "hosts": [
    "docomo.ne.jp"
   ],
   "commands": [
    "RCPT"
   ]
  },
  {
   "id": "docomo-5.0.0-data",
   "category": "policy_block",
   "hard": true,
   "enhanced": [
    "5.0.0"
   ],
   "hosts": [
    "docomo.ne.jp"
   ],
   "commands": [
    "DATA"
   ]
  },
  {
   "id": "kddi-filtered",
   "category": "filtered",
   "hard": true,
   "codes": [
    550
   ],
   "text": [
    "^\\s*:\\s*user unknown"
   ],
   "hosts": [
    "ezweb.ne.jp",
    "au.com",
    "kddi.com"
   ]
  },
  {
   "id": "kddi-user-unknown",
   "category": "invalid_recipient",
   "hard": true,
   "text": [
    ">\\s*:\\s*user unknown"
   ],
   "hosts": [
    "ezweb.ne.jp",
    "au.com",
    "kddi.com"
   ]
  },
  {
   "id": "google-low-reputation",
   "category": "policy_block",
   "text": [
    "low reputation",
    "reputation of the sending"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-unsolicited-rate",
   "category": "rate_limited",
   "hard": false,
   "text": [
    "unusual rate of unsolicited",
    "unusual rate"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ],
   "codes": [
    4
   ]
  },
  {
   "id": "google-unsolicited-block",
   "category": "policy_block",
   "codes": [
    5
   ],
   "text": [
    "unusual rate of unsolicited"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-unsolicited",
   "category": "spam_block",
   "text": [
    "likely unsolicited mail",
    "likely suspicious"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-unauthenticated",
   "category": "policy_block",
   "enhanced": [
    "4.7.24",
    "4.7.25",
    "4.7.26",
    "4.7.27",
    "4.7.28",
    "4.7.30",
    "4.7.32",
    "4.7.40",
    "5.7.24",
    "5.7.25",
    "5.7.26",
    "5.7.27",
    "5.7.28",
    "5.7.30",
    "5.7.32",
    "5.7.40"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-rate",
   "category": "rate_limited",
   "hard": false,
   "enhanced": [
    "4.7.28",
    "4.2.1",
    "5.4.5",
    "4.7.0"
   ],
   "text": [
    "rate",
    "try again later"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-does-not-exist",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.1.1"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-disabled",
   "category": "inactive_mailbox",
   "hard": true,
   "enhanced": [
    "5.2.1"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-over-quota",
   "category": "mailbox_full",
   "hard": false,
   "enhanced": [
    "4.2.2",
    "5.2.2"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "google-size",
   "category": "message_too_large",
   "hard": true,
   "enhanced": [
    "5.2.3",
    "5.3.4"
   ],
   "hosts": [
    "gmail.com",
    "googlemail.com",
    "google.com"
   ]
  },
  {
   "id": "microsoft-suspicious-activity",
   "category": "policy_block",
   "hard": false,
   "text": [
    "access denied, please try again later"
   ],
   "hosts": [
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "protection.outlook.com",
    "outlook.jp",
    "hotmail.co.jp"
   ]
  },
  {
   "id": "microsoft-rate-limited",
   "category": "rate_limited",
   "hard": false,
   "text": [
    "rate limited",
    "\\b4\\.7\\.650\\b",
    "too many connections"
   ],
   "hosts": [
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "protection.outlook.com",
    "outlook.jp",
    "hotmail.co.jp"
   ]
  },
  {
   "id": "microsoft-blocklist",
   "category": "policy_block",
   "text": [
    "block list",
    "\\bS3150\\b",
    "\\bS3140\\b",
    "banned sending ip",
    "spamhaus"
   ],
   "hosts": [
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "protection.outlook.com",
    "outlook.jp",
    "hotmail.co.jp"
   ]
  },
  {
   "id": "microsoft-access-denied",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.4.1"
   ],
   "text": [
    "recipient address rejected"
   ],
   "hosts": [
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "protection.outlook.com",
    "outlook.jp",
    "hotmail.co.jp"
   ]
  },
  {
   "id": "microsoft-mailbox-unavailable",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.5.0"
   ],
   "text": [
    "mailbox unavailable"
   ],
   "hosts": [
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "protection.outlook.com",
    "outlook.jp",
    "hotmail.co.jp"
   ]
  },
  {
   "id": "yahoo-tss04",
   "category": "rate_limited",
   "hard": false,
   "text": [
    "\\[TS0[1-4]\\]",
    "temporarily deferred"
   ],
   "hosts": [
    "yahoo.com",
    "yahoo.co.jp",
    "yahoodns.net",
    "ymail.com",
    "aol.com"
   ]
  },
  {
   "id": "yahoo-tss09",
   "category": "policy_block",
   "hard": true,
   "text": [
    "\\[TSS0[9]\\]",
    "permanently deferred"
   ],
   "hosts": [
    "yahoo.com",
    "yahoo.co.jp",
    "yahoodns.net",
    "ymail.com",
    "aol.com"
   ]
  },
  {
   "id": "yahoo-policy",
   "category": "policy_block",
   "enhanced": [
    "5.7.9"
   ],
   "hosts": [
    "yahoo.com",
    "yahoo.co.jp",
    "yahoodns.net",
    "ymail.com",
    "aol.com"
   ]
  },
  {
   "id": "yahoo-no-account",
   "category": "invalid_recipient",
   "hard": true,
   "text": [
    "doesn'?t have a .* account",
    "mailbox not found",
    "user unknown",
    "no such user"
   ],
   "hosts": [
    "yahoo.com",
    "yahoo.co.jp",
    "yahoodns.net",
    "ymail.com",
    "aol.com"
   ]
  },
  {
   "id": "apple-policy",
   "category": "policy_block",
   "text": [
    "\\[CS0\\d\\]",
    "local policy"
   ],
   "hosts": [
    "icloud.com",
    "me.com",
    "mac.com"
   ]
  },
  {
   "id": "apple-user",
   "category": "invalid_recipient",
   "hard": true,
   "text": [
    "user does not exist"
   ],
   "hosts": [
    "icloud.com",
    "me.com",
    "mac.com"
   ]
  },
  {
   "id": "apple-quota",
   "category": "mailbox_full",
   "hard": false,
   "text": [
    "over quota"
   ],
   "hosts": [
    "icloud.com",
    "me.com",
    "mac.com"
   ]
  },
  {
   "id": "null-mx",
   "category": "bad_domain",
   "hard": true,
   "text": [
    "does not accept mail",
    "null MX"
   ]
  },
  {
   "id": "tls-required",
   "category": "tls_failure",
   "text": [
    "starttls",
    "tls required",
    "tls/ssl",
    "must use tls",
    "encryption required"
   ]
  },
  {
   "id": "sender-domain",
   "category": "policy_block",
   "text": [
    "sender address rejected",
    "sender domain (not found|unknown|does not exist|must resolve)",
    "unresolvable"
   ]
  },
  {
   "id": "authentication",
   "category": "policy_block",
   "text": [
    "\\b(spf|dkim|dmarc)\\b",
    "unauthenticated",
    "authenticate (with|their)",
    "isn'?t aligned",
    "authentication (level|checks|requirements)"
   ]
  },
  {
   "id": "expired-reply",
   "category": "expired",
   "hard": true,
   "text": [
    "message expired",
    "queue expired",
    "expired in queue",
    "retry time(out)? (exceeded|expired)"
   ]
  },
  {
   "id": "relay-denied",
   "category": "relay_denied",
   "hard": true,
   "text": [
    "relay(ing)? (access )?(denied|not permitted|prohibited)",
    "not permitted to relay",
    "unable to relay",
    "we do not relay",
    "relay access denied"
   ]
  },
  {
   "id": "mailbox-full",
   "category": "mailbox_full",
   "hard": false,
   "text": [
    "over ?quota",
    "quota exceeded",
    "mailbox (is )?full",
    "mail ?box full",
    "insufficient (system )?storage",
    "exceeded storage",
    "too much mail data",
    "storage space"
   ]
  },
  {
   "id": "inactive",
   "category": "inactive_mailbox",
   "hard": true,
   "text": [
    "\\b(account|mailbox|user) (is |has been )?(disabled|inactive|deactivated|suspended|closed|locked)",
    "no longer (active|available|in use)",
    "expired account",
    "inactive (e-?mail )?(address|account|mailbox)",
    "(address|account|mailbox|\\S+@\\S+) (is )?no longer valid"
   ]
  },
  {
   "id": "too-large",
   "category": "message_too_large",
   "hard": true,
   "text": [
    "message (size )?(is )?(too (large|big)|exceeds|exceeded)",
    "size limit",
    "message length exceeds",
    "too big"
   ]
  },
  {
   "id": "sender-at-mail",
   "category": "policy_block",
   "codes": [
    5
   ],
   "commands": [
    "MAIL"
   ]
  },
  {
   "id": "user-unknown",
   "category": "invalid_recipient",
   "hard": true,
   "text": [
    "user unknown",
    "unknown user",
    "no such (user|recipient|mailbox|address)",
    "(user|recipient|mailbox|address) (not found|does not exist|doesn'?t exist|unknown|not known|invalid)",
    "does not exist",
    "invalid (recipient|mailbox|address)",
    "mailbox not found",
    "unrouteable address",
    "not our customer",
    "no mailbox here",
    "mailbox unavailable",
    "recipient rejected",
    "address rejected",
    "undeliverable address",
    "宛先不明|存在しません"
   ]
  },
  {
   "id": "rate",
   "category": "rate_limited",
   "hard": false,
   "text": [
    "rate limit",
    "too many (messages|connections|mails|emails)",
    "temporarily (deferred|rate)",
    "throttl",
    "unusual rate",
    "try (again )?later",
    "too many concurrent",
    "exceeded .* limit",
    "too (quickly|fast)",
    "(max|maximum) (number of )?messages? per (connection|session)"
   ]
  },
  {
   "id": "spam",
   "category": "spam_block",
   "text": [
    "\\bspam\\b",
    "unsolicited",
    "virus",
    "malware",
    "phishing",
    "content (rejected|filter)",
    "blocked for content",
    "bulk mail",
    "potential security issue"
   ]
  },
  {
   "id": "policy",
   "category": "policy_block",
   "text": [
    "reputation",
    "block ?list",
    "black ?list",
    "listed (at|in|on|by)",
    "spamhaus|barracuda|sorbs|spamcop|uceprotect",
    "\\bdmarc\\b",
    "\\bspf\\b",
    "\\bdkim\\b",
    "unauthenticated",
    "authentication (required|failed)",
    "reverse (dns|lookup)",
    "\\bptr\\b",
    "\\brdns\\b",
    "local policy",
    "policy (reasons|rejection|violation)",
    "not authori[sz]ed",
    "sender (address )?(rejected|denied|blocked)",
    "access denied",
    "blocked"
   ]
  },
  {
   "id": "bad-domain",
   "category": "bad_domain",
   "hard": true,
   "text": [
    "domain (not found|does not exist|unknown)",
    "host (not found|unknown)",
    "no such domain",
    "unknown domain"
   ]
  },
  {
   "id": "syntax-codes",
   "category": "protocol_error",
   "codes": [
    500,
    501,
    502,
    503,
    504
   ]
  },
  {
   "id": "x.1.1",
   "category": "invalid_recipient",
   "hard": true,
   "enhanced": [
    "5.1.1",
    "5.1.0",
    "5.1.3",
    "5.1.6"
   ]
  },
  {
   "id": "x.1.2",
   "category": "bad_domain",
   "hard": true,
   "enhanced": [
    "5.1.2",
    "5.1.10",
    "5.4.4"
   ]
  },
  {
   "id": "x.1.8",
   "category": "policy_block",
   "enhanced": [
    "5.1.8",
    "4.1.8",
    "5.1.7"
   ]
  },
  {
   "id": "x.2.1",
   "category": "inactive_mailbox",
   "hard": true,
   "enhanced": [
    "5.2.1"
   ]
  },
  {
   "id": "x.2.2",
   "category": "mailbox_full",
   "hard": false,
   "enhanced": [
    "5.2.2",
    "4.2.2"
   ]
  },
  {
   "id": "x.2.3",
   "category": "message_too_large",
   "hard": true,
   "enhanced": [
    "5.2.3",
    "5.3.4",
    "4.3.4"
   ]
  },
  {
   "id": "x.7.1-relay",
   "category": "relay_denied",
   "hard": true,
   "enhanced": [
    "5.7.1"
   ],
   "text": [
    "relay"
   ]
  },
  {
   "id": "x.4.7",
   "category": "expired",
   "hard": true,
   "enhanced": [
    "5.4.7",
    "4.4.7"
   ]
  },
  {
   "id": "x.4.x",
   "category": "connection_failure",
   "hard": false,
   "enhanced": [
    "4.4."
   ]
  },
  {
   "id": "x.4.6",
   "category": "other",
   "hard": true,
   "enhanced": [
    "5.4.6"
   ]
  },
  {
   "id": "x.7.x",
   "category": "policy_block",
   "enhanced": [
    "5.7.",
    "4.7."
   ]
  },
  {
   "id": "x.5.x",
   "category": "protocol_error",
   "enhanced": [
    "5.5.",
    "4.5.",
    "5.6.",
    "4.6."
   ]
  },
  {
   "id": "x.3.x",
   "category": "other",
   "enhanced": [
    "4.3.",
    "5.3."
   ]
  },
  {
   "id": "dns-permanent",
   "category": "bad_domain",
   "hard": true,
   "text": [
    "NXDOMAIN",
    "null MX",
    "does not accept mail",
    "does not exist"
   ],
   "kind": "dns"
  },
  {
   "id": "dns-transient",
   "category": "dns_failure",
   "hard": false,
   "kind": "dns"
  },
  {
   "id": "tls",
   "category": "tls_failure",
   "hard": false,
   "kind": "tls"
  },
  {
   "id": "connection",
   "category": "connection_failure",
   "hard": false,
   "kind": "connection"
  },
  {
   "id": "expired",
   "category": "expired",
   "hard": true,
   "kind": "expired"
  }
 ]
}
"""#
}

import Foundation

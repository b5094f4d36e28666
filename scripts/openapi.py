#!/usr/bin/env python3
"""Writes docs/openapi.json (the native API's OpenAPI 3.1 description) and
the same text as the API module's resource Sources/API/Resources/openapi.json,
which the server serves at /openapi.json. Run after changing the API; a test
checks they agree."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Address forms the server accepts (MIME NameAddress): an addr-spec, optionally
# after a display name in front of <…>.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"
LABEL = r"[A-Za-z0-9-]{1,20}"
ADDR = rf"{ATOM}{{1,30}}@{LABEL}(\.{LABEL}){{1,3}}"
address = {"oneOf": [
    {"type": "string", "pattern": rf"^({ADDR}|[A-Za-z0-9 ]{{0,20}}<{ADDR}>)$",
     "description": "addr@example.com or Name <addr@example.com>", "examples": ["Shop <shop@acme.example>"]},
    {"type": "object", "required": ["email"], "properties": {
        "email": {"type": "string", "pattern": rf"^{ADDR}$"}, "name": {"type": "string", "pattern": r"^[^\r\n]*$"}}}]}
address_list = {"oneOf": [{"$ref": "#/components/schemas/Address"},
                          {"type": "array", "items": {"$ref": "#/components/schemas/Address"}, "minItems": 1, "maxItems": 100}]}
time = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": r"^[0-9]{1,10}$"}],
        "description": "ISO 8601 time or Unix seconds"}
message_id = {"type": "string", "pattern": "^[0-9a-hjkmnp-tv-z]{20}$"}
EVENT_TYPES = ["accepted", "deferred", "delivered", "bounced", "expired", "cancelled", "suppressed", "complained", "unsubscribed", "delayed", "opened", "clicked"]
error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}}}}
event = {"type": "object", "required": ["at", "message_id", "recipient", "type"], "properties": {
    "at": {"type": "string", "format": "date-time"}, "message_id": {"type": "string"}, "recipient": {"type": "string"},
    "type": {"type": "string", "enum": EVENT_TYPES},
    "attempt": {"type": "integer"}, "reply_code": {"type": "integer"}, "enhanced_code": {"type": "string"}, "reply_text": {"type": "string"},
    "category": {"type": "string"}, "hard": {"type": "boolean"}, "site": {"type": "string"}, "mx_host": {"type": "string"},
    "remote_ip": {"type": "string"}, "source_ip": {"type": "string"}, "tls_version": {"type": "string"}, "duration_ms": {"type": "integer"},
    "id": {"type": "string", "description": "ev_…, as in webhooks"}, "user_agent": {"type": "string"}, "ip": {"type": "string"},
    "url": {"type": "string"}, "machine": {"type": "boolean", "description": "An open or click by a privacy proxy or scanner"}}}
template_input = {"type": "object", "required": ["subject"], "anyOf": [{"required": ["text"]}, {"required": ["html"]}], "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "subject": {"type": "string"},
    "text": {"type": "string"}, "html": {"type": "string"}, "marketing": {"type": ["boolean", "null"]}, "defaults": {"type": ["object", "null"]},
    "missing": {"enum": ["error", "default", None],
                "description": "error: a variable missing from the data fails the send; default: use defaults, then empty"}}}
template = {"type": "object", "required": ["name", "subject", "missing", "created_at", "updated_at"], "properties": {
    "name": {"type": "string"}, "subject": {"type": "string"}, "text": {"type": ["string", "null"]}, "html": {"type": ["string", "null"]},
    "marketing": {"type": "boolean"}, "defaults": {"type": "object"}, "missing": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}}
suppression = {"type": "object", "required": ["address", "reason", "scope", "created_at"], "properties": {
    "address": {"type": "string"}, "reason": {"type": "string", "enum": ["bounce", "complaint", "unsubscribe", "manual"]},
    "scope": {"type": "string", "enum": ["transactional", "marketing", "all"]},
    "created_at": {"type": "string", "format": "date-time"}, "source": {"type": ["string", "null"]}}}
single_line = {"type": "string", "pattern": r"^[^\r\n]*$"}
send = {"type": "object", "required": ["from"], "properties": {
    "from": {"$ref": "#/components/schemas/Address"}, "to": {"$ref": "#/components/schemas/AddressList"},
    "cc": {"$ref": "#/components/schemas/AddressList"}, "bcc": {"$ref": "#/components/schemas/AddressList"},
    "reply_to": {"$ref": "#/components/schemas/AddressList"},
    "subject": {**single_line, "description": "A Mustache template when template data is given"},
    "text": {"type": "string"}, "html": {"type": "string"},
    "template": {"type": "string", "description": "Name of a stored template"}, "template_data": {"type": "object"},
    "attachments": {"type": "array", "items": {"type": "object", "required": ["filename", "content"], "properties": {
        "filename": single_line, "content": {"type": "string", "contentEncoding": "base64"}, "content_type": {"type": "string"},
        "inline": {"type": "boolean"}, "content_id": {"type": "string"}}}},
    "headers": {"type": "object", "additionalProperties": single_line},
    "charset": {"type": "string", "enum": ["UTF-8", "ISO-2022-JP"]},
    "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}},
    "custom_args": {"type": "object", "additionalProperties": {"type": "string"}},
    "marketing": {"type": "boolean"}, "send_at": {"anyOf": [time, {"type": "number"}, {"type": "null"}]},
    "tracking": {"type": "object", "description": "Open and click tracking of the HTML part (default: the account's setting)",
                 "properties": {"opens": {"type": "boolean"}, "clicks": {"type": "boolean"}}},
    "recipients": {"type": "array", "maxItems": 1000, "description": "One personalised message per entry", "items": {
        "type": "object", "required": ["to"], "properties": {
            "to": {"$ref": "#/components/schemas/AddressList"}, "cc": {"$ref": "#/components/schemas/AddressList"},
            "bcc": {"$ref": "#/components/schemas/AddressList"}, "data": {"type": "object"},
            "tags": {"type": "array", "items": {"type": "string"}}, "custom_args": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
    "examples": [{"from": "Shop <shop@acme.example>", "subject": "{{name}}様、ポイントのお知らせ", "text": "{{name}}様の残りポイントは{{points}}です。",
                  "recipients": [{"to": "taro@example.jp", "data": {"name": "太郎", "points": 120}},
                                 {"to": "hanako@example.jp", "data": {"name": "花子", "points": 80}}]}]}
webhook = {"type": "object", "required": ["id", "name", "url", "format", "events", "enabled"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": "string"}, "format": {"type": "string", "enum": ["native", "sendgrid", "ses"]},
    "events": {"type": "array", "items": {"type": "string"}}, "enabled": {"type": "boolean"}, "created_at": {"type": "string"},
    "position": {"type": "integer", "description": "The last event id sent or passed over"},
    "failing_since": {"type": ["string", "null"]}, "disabled_reason": {"type": ["string", "null"]},
    "secret": {"type": "string", "description": "native: whsec_…, in the creation answer only"},
    "public_key": {"type": "string", "description": "sendgrid: the verification key"},
    "topic_arn": {"type": "string", "description": "ses: the SNS topic ARN for configuration-set event destinations"},
    "confirmed": {"type": "boolean", "description": "ses: the subscription was confirmed"}}}
webhook_attempt = {"type": "object", "required": ["at", "events", "succeeded"], "properties": {
    "at": {"type": "string"}, "events": {"type": "integer"}, "first_event": {"type": "integer"}, "last_event": {"type": "integer"},
    "status": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}, "succeeded": {"type": "boolean"},
    "duration_ms": {"type": "integer"}, "replay": {"type": "boolean"}, "test": {"type": "boolean"}}}
accepted = {"type": "object", "required": ["messages"], "properties": {"id": {"type": "string"}, "messages": {"type": "array", "items": {
    "type": "object", "required": ["id", "recipients"], "properties": {"id": {"type": "string"}, "recipients": {"type": "array", "items": {"type": "string"}}}}}}}

quota = {"type": "object", "properties": {
    "max_send_rate": {"type": "number", "description": "Recipients per second; -1: unlimited"},
    "max_24h_send": {"type": "integer", "description": "Recipients per rolling 24 hours; -1: unlimited"},
    "sandbox": {"type": "boolean", "description": "Only recipients in the account's own domains"}}}
account = {"type": "object", "required": ["name", "disabled", "domains", "quota"], "properties": {
    "name": {"type": "string"}, "disabled": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"},
    "domains": {"type": "array", "items": {"type": "string"}}, "verified_domains": {"type": "array", "items": {"type": "string"}},
    "egress_pool": {"type": "string"}, "quota": quota, "suppressed_reasons": {"type": "array", "items": {"type": "string"}},
    "smtp_username": {"type": "string", "description": "At creation only"}, "smtp_password": {"type": "string", "description": "At creation only"}}}
api_key = {"type": "object", "required": ["id", "scope", "created_at", "revoked"], "properties": {
    "id": {"type": "string", "description": "Also the AWS access key id"}, "scope": {"type": "string", "enum": ["send", "read", "admin", "operator"]},
    "created_at": {"type": "string", "format": "date-time"}, "revoked": {"type": "boolean"},
    "token": {"type": "string", "description": "At creation only: the bearer token"}, "secret": {"type": "string", "description": "At creation only: the AWS secret"}}}
smtp_credential = {"type": "object", "required": ["username", "created_at", "primary"], "properties": {
    "username": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}, "primary": {"type": "boolean"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"}, "password": {"type": "string", "description": "At creation only"}}}
console_user = {"type": "object", "required": ["id", "email", "role", "disabled"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "role": {"type": "string", "enum": ["operator", "admin", "member"]},
    "disabled": {"type": "boolean"}, "account": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"},
    "password": {"type": "string", "description": "At creation only: the first password"}}}
queued_message = {"type": "object", "required": ["id", "received_at", "from", "held", "recipients", "pending"], "properties": {
    "id": {"type": "string"}, "received_at": {"type": "string", "format": "date-time"}, "from": {"type": "string"}, "size": {"type": "integer"},
    "held": {"type": "boolean"}, "recipients": {"type": "integer"}, "pending": {"type": "integer"}}}
account_name = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}


def err(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def ok(description, schema, code="200"):
    return {code: {"description": description, "content": {"application/json": {"schema": schema}}}}


def query(name, schema, description=""):
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def path(name, schema=None):
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


# The responses every operation shares, defined once under components.responses.
shared_responses = {"BadRequest": err("Malformed request"), "Unauthorized": err("Missing or wrong API key"),
                    "Forbidden": err("The key's scope or the account does not allow this"),
                    "TooManyRequests": err("Too many failed authentications, or over quota (see Retry-After)")}
common = {code: {"$ref": f"#/components/responses/{name}"}
          for code, name in (("400", "BadRequest"), ("401", "Unauthorized"), ("403", "Forbidden"), ("429", "TooManyRequests"))}
filters = [query("recipient", {"type": "string"}), query("message_id", message_id), query("tag", {"type": "string"}),
           query("sender", {"type": "string", "description": "Envelope sender, without case"}),
           query("subject", {"type": "string", "description": "Text in the decoded subject (a substring)"}),
           query("provider", {"type": "string", "description": "Delivery site: a shaping rule such as gmail or docomo, or mx:HOSTS"}),
           query("status", {"type": "string", "enum": EVENT_TYPES}),
           query("category", {"type": "string"}), query("since", time), query("until", time)]
document = {
    "openapi": "3.1.0",
    "info": {"title": "Hikyaku API", "version": "1.0.0", "description":
             "Native HTTP API of the Hikyaku mail relay. Authenticate with 'Authorization: Bearer hk_…' (hikyaku apikey create). "
             "Errors are {\"error\": {\"code\", \"message\"}}. The SES v2 (/v2/email) and SendGrid v3 (/v3) subsets are described by those services."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "responses": shared_responses, "schemas": {
        "Error": error, "Address": address, "AddressList": address_list, "Event": event, "Template": template, "TemplateInput": template_input,
        "Suppression": suppression, "SendRequest": send, "Accepted": accepted, "Webhook": webhook, "WebhookAttempt": webhook_attempt,
        "Account": account, "Quota": quota, "APIKey": api_key, "SMTPCredential": smtp_credential, "ConsoleUser": console_user,
        "QueuedMessage": queued_message}},
    "paths": {
        "/v1/messages": {"post": {
            "operationId": "sendMessages", "summary": "Send one message, or up to 1,000 personalised ones",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}}}},
            "responses": {**ok("Durably queued", {"$ref": "#/components/schemas/Accepted"}, "202"), **common, "404": err("Template not found"),
                          "413": err("Request or message too large"), "422": err("Invalid message (addresses, header injection, template data)"),
                          "503": err("Spool unavailable"), "507": err("Spool storage full")}}},
        "/v1/messages/{id}": {"get": {
            "operationId": "getMessage", "summary": "Envelope, recipients and every delivery attempt", "parameters": [path("id", message_id)],
            "responses": {**ok("The message", {"type": "object", "required": ["id", "recipients", "events"], "properties": {
                "id": {"type": "string"}, "from": {"type": "string"}, "received_at": {"type": "string"},
                "recipients": {"type": "array", "items": {"type": "object", "properties": {
                    "address": {"type": "string"}, "state": {"type": "string"}, "attempts": {"type": "integer"},
                    "last_reply": {"type": ["string", "null"]}}}},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}), **common, "404": err("No such message")}}},
        "/v1/messages/{id}/resend": {"post": {
            "operationId": "resendMessage", "summary": "Send again to the recipients that bounced, expired or were cancelled",
            "parameters": [path("id", message_id)],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "recipients": {"type": "array", "items": {"type": "string"}}}}}}},
            "responses": {**ok("Queued again", {"type": "object", "properties": {"id": {"type": "string"}, "resend_of": {"type": "string"},
                                                                                 "recipients": {"type": "array", "items": {"type": "string"}}}}, "202"),
                          **common, "404": err("No such message"), "409": err("Nothing to resend"), "410": err("Content no longer stored"),
                          "503": err("Spool unavailable")}}},
        "/v1/resend": {"post": {
            "operationId": "resendByFilter", "summary": "Resend every failed recipient matching a filter",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "status": {"type": "array", "items": {"type": "string", "enum": ["bounced", "expired", "cancelled"]}},
                "category": {"type": "string"}, "recipient": {"type": "string"}, "tag": {"type": "string"},
                "since": {"type": "string", "format": "date-time"}, "until": {"type": "string", "format": "date-time"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10000}}},
                "examples": [{"status": ["bounced"], "category": "mailbox_full", "since": "2026-11-01T00:00:00Z"}]}}},
            "responses": {**ok("Resent", {"type": "object", "properties": {"resent": {"type": "array"}, "skipped": {"type": "array"}}}, "202"),
                          **common, "503": err("Spool unavailable")}}},
        "/v1/events": {"get": {
            "operationId": "searchEvents", "summary": "Search the event log, newest first; Accept: text/csv for CSV",
            "parameters": filters + [query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                                     query("cursor", {"type": "string", "pattern": r"^[0-9.]+_[0-9]+$"})],
            "responses": {"200": {"description": "Events", "content": {
                "application/json": {"schema": {"type": "object", "required": ["events", "next_cursor"], "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "next_cursor": {"type": ["string", "null"]}}}},
                "text/csv": {"schema": {"type": "string"}}}}, **common}}},
        "/v1/stats": {"get": {
            "operationId": "stats", "summary": "Event counts per hour or day, optionally per tag or receiving provider",
            "parameters": [query("since", time), query("until", time), query("interval", {"type": "string", "enum": ["hour", "day"]}),
                           query("group_by", {"type": "string", "enum": ["none", "tag", "provider"]})],
            "responses": {**ok("Counts", {"type": "object", "required": ["stats", "engagement"], "properties": {"stats": {"type": "array", "items": {
                "type": "object", "properties": {"period": {"type": "string"}, "counts": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
                "engagement": {"type": "object", "description": "Opens and clicks in the window: total and unique (per message and recipient), people and machines apart",
                               "properties": {kind: {"type": "object", "properties": {name: {"type": "integer"} for name in
                                                                                       ["human_total", "human_unique", "machine_total", "machine_unique"]}}
                                              for kind in ["opened", "clicked"]}}}}),
                          **common}}},
        "/v1/stats/bounces": {"get": {
            "operationId": "bounceAnalysis", "summary": "Bounces by category and receiving provider, top replies, affected recipients",
            "parameters": [query("since", time), query("until", time), query("limit", {"type": "integer", "minimum": 1, "maximum": 10000})],
            "responses": {**ok("Analysis", {"type": "object", "required": ["total", "by_category", "by_provider", "top_replies", "recipients"],
                "properties": {"total": {"type": "integer"},
                               "by_category": {"type": "array", "items": {"type": "object", "properties": {
                                   "name": {"type": "string"}, "bounces": {"type": "integer"}, "hard": {"type": "integer"}}}},
                               "by_provider": {"type": "array", "items": {"type": "object", "properties": {
                                   "name": {"type": "string"}, "bounces": {"type": "integer"}, "hard": {"type": "integer"}}}},
                               "top_replies": {"type": "array", "items": {"type": "object", "properties": {
                                   "category": {"type": "string"}, "text": {"type": "string"}, "count": {"type": "integer"}}}},
                               "recipients": {"type": "array", "items": {"type": "object", "properties": {
                                   "recipient": {"type": "string"}, "category": {"type": "string"}, "at": {"type": "string"},
                                   "message_id": {"type": "string"}, "reply_text": {"type": ["string", "null"]}}}}}}), **common}}},
        "/v1/domains": {
            "get": {"operationId": "listDomains", "summary": "The account's sending domains and their DKIM keys",
                    "responses": {**ok("Domains", {"type": "object", "required": ["domains"], "properties": {"domains": {"type": "array", "items": {
                        "type": "object", "properties": {"domain": {"type": "string"}, "verified": {"type": "boolean"},
                                                         "dkim": {"type": "array"},
                                                         "return_path": {"type": "object", "properties": {
                                                             "domain": {"type": "string"}, "verified": {"type": "boolean"}}}}}}}}), **common}},
            "post": {"operationId": "addDomain", "summary": "Add a sending domain with a new DKIM key (RSA-2048 or Ed25519)",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["domain"], "properties": {
                         "domain": {"type": "string", "pattern": r"^[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){1,3}$"},
                         "algorithm": {"type": "string", "enum": ["rsa", "ed25519"]},
                         "return_path": {"type": "string", "description": "The domain's own bounce domain: the domain or a name under it; used once its MX names this server"}}}}}},
                     "responses": {**ok("The key and its DNS record", {"type": "object", "properties": {
                         "domain": {"type": "string"}, "selector": {"type": "string"}, "active": {"type": "boolean"}, "record": {"type": "object"}}}, "201"),
                         **common, "409": err("The domain belongs to another account")}}},
        "/v1/domains/{domain}/verify": {"post": {
            "operationId": "verifyDomain",
            "summary": "Look the domain's records up in DNS; the domain is verified (may be used as sender and From) when its active DKIM key's record is published",
            "parameters": [path("domain")],
            "responses": {**ok("The records checked and the verdict", {"type": "object", "required": ["domain", "verified", "records"], "properties": {
                "domain": {"type": "string"}, "verified": {"type": "boolean"},
                "return_path": {"type": "object", "properties": {"domain": {"type": "string"}, "verified": {"type": "boolean"}}},
                "records": {"type": "array", "items": {"type": "object", "required": ["name", "status"], "properties": {
                    "name": {"type": "string"}, "type": {"type": "string"}, "purpose": {"type": "string"}, "expected": {"type": "string"},
                    "found": {"type": "array", "items": {"type": "string"}},
                    "status": {"type": "string", "enum": ["ok", "missing", "wrong", "unknown"]}, "detail": {"type": "string"}}}}}}),
                **common, "404": err("No DKIM key of this account for the domain"), "503": err("Verification unavailable")}}},
        "/v1/domains/{domain}/compliance": {"get": {
            "operationId": "domainCompliance", "summary": "Bulk-sender compliance: SPF, DKIM, DMARC alignment, reverse DNS, TLS, unsubscribe, complaint rate",
            "parameters": [path("domain")],
            "responses": {**ok("Checks", {"type": "object", "required": ["domain", "checks"], "properties": {
                "domain": {"type": "string"}, "checks": {"type": "array", "items": {"type": "object", "required": ["name", "status", "detail"], "properties": {
                    "name": {"type": "string"}, "status": {"type": "string", "enum": ["pass", "warn", "fail"]}, "detail": {"type": "string"},
                    "fix": {"type": ["string", "null"]}}}}}}), **common, "404": err("Not one of the account's domains"),
                "503": err("Checks unavailable")}}},
        "/v1/account": {"get": {
            "operationId": "getAccount", "summary": "The account, its quotas and what counts against them",
            "responses": {**ok("Account", {"type": "object", "required": ["name", "quota"], "properties": {
                "name": {"type": "string"}, "domains": {"type": "array", "items": {"type": "string"}},
                "verified_domains": {"type": "array", "items": {"type": "string"}},
                "suppressed_reasons": {"type": "array", "items": {"type": "string"}},
                "quota": {"type": "object", "properties": {"max_send_rate": {"type": "number"}, "max_24h_send": {"type": "integer"},
                                                           "sent_last_24h": {"type": "integer"}, "sandbox": {"type": "boolean"}}}}}), **common}}},
        "/v1/account/suppression": {"put": {
            "operationId": "setSuppressedReasons", "summary": "Which reports suppress an address automatically (unsubscribes always do)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["reasons"], "properties": {
                "reasons": {"type": "array", "items": {"type": "string", "enum": ["bounce", "complaint"]}}}}}}},
            "responses": {**ok("Set", {"type": "object", "properties": {"suppressed_reasons": {"type": "array", "items": {"type": "string"}}}}),
                          **common}}},
        "/v1/account/tracking": {"put": {
            "operationId": "setTrackingDefaults", "summary": "Whether the account's HTML mail tracks opens and clicks unless a send says otherwise",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "opens": {"type": "boolean"}, "clicks": {"type": "boolean"}}}}}},
            "responses": {**ok("Set", {"type": "object", "properties": {"opens": {"type": "boolean"}, "clicks": {"type": "boolean"}}}), **common}}},
        "/v1/webhooks": {
            "get": {"operationId": "listWebhooks", "summary": "The account's webhook endpoints",
                    "responses": {**ok("Endpoints", {"type": "object", "required": ["webhooks"], "properties": {
                        "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}}}), **common}},
            "post": {"operationId": "createWebhook", "summary": "Create an endpoint; the native format's secret is in this answer only",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["url"], "properties": {
                         "url": {"type": "string", "description": "https (http only with webhooks.allowPlainHttp)"},
                         "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                         "format": {"type": "string", "enum": ["native", "sendgrid", "ses"]},
                         "events": {"type": "array", "items": {"type": "string", "enum": EVENT_TYPES}},
                         "enabled": {"type": "boolean"}}}}}},
                     "responses": {**ok("Created", {"$ref": "#/components/schemas/Webhook"}, "201"), **common, "409": err("Name taken")}}},
        "/v1/webhooks/{id}": {
            "get": {"operationId": "getWebhook", "parameters": [path("id")],
                    "responses": {**ok("Endpoint", {"$ref": "#/components/schemas/Webhook"}), **common, "404": err("Not found")}},
            "patch": {"operationId": "updateWebhook", "parameters": [path("id")],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                          "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string", "enum": EVENT_TYPES}},
                          "enabled": {"type": "boolean", "description": "Enabling resumes where it stopped"}}}}}},
                      "responses": {**ok("Updated", {"$ref": "#/components/schemas/Webhook"}), **common, "404": err("Not found")}},
            "delete": {"operationId": "deleteWebhook", "parameters": [path("id")],
                       "responses": {"204": {"description": "Deleted"}, **common, "404": err("Not found")}}},
        "/v1/webhooks/{id}/test": {"post": {
            "operationId": "testWebhook", "summary": "Send one sample event now", "parameters": [path("id")],
            "responses": {**ok("The request and its outcome", {"$ref": "#/components/schemas/WebhookAttempt"}), **common, "404": err("Not found")}}},
        "/v1/webhooks/{id}/deliveries": {"get": {
            "operationId": "webhookDeliveries", "summary": "Recent requests to the endpoint, newest first",
            "parameters": [path("id"), query("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
            "responses": {**ok("Requests", {"type": "object", "required": ["deliveries"], "properties": {
                "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookAttempt"}}}}), **common, "404": err("Not found")}}},
        "/v1/webhooks/{id}/replay": {"post": {
            "operationId": "replayWebhook", "summary": "Send the events of a time range again (same event ids)", "parameters": [path("id")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["since"], "properties": {
                "since": time, "until": time}}}}},
            "responses": {**ok("Nothing in the range", {"type": "object"}), **ok("Queued", {"type": "object"}, "202"), **common,
                          "404": err("Not found")}}},
        "/v1/account/usage": {"get": {
            "operationId": "getUsage", "summary": "Messages, recipients and bytes accepted per UTC day",
            "parameters": [query("since", time), query("until", time)],
            "responses": {**ok("Usage", {"type": "object", "required": ["usage"], "properties": {"usage": {"type": "array", "items": {
                "type": "object", "properties": {"day": {"type": "string"}, "messages": {"type": "integer"}, "recipients": {"type": "integer"},
                                                 "bytes": {"type": "integer"}}}}}}), **common}}},
        "/v1/templates": {
            "get": {"operationId": "listTemplates", "parameters": [query("after", {"type": "string"}),
                                                                   query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
                    "responses": {**ok("Templates", {"type": "object", "required": ["templates"], "properties": {
                        "templates": {"type": "array", "items": {"$ref": "#/components/schemas/Template"}}, "next": {"type": ["string", "null"]}}}),
                                  **common}},
            "post": {"operationId": "createTemplate",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TemplateInput"},
                         "examples": {"points": {"value": {"name": "points", "subject": "{{name}}様", "text": "残り{{points}}ポイント",
                                                           "missing": "error"}}}}}},
                     "responses": {**ok("Created", {"$ref": "#/components/schemas/Template"}, "201"), **common, "409": err("Exists"),
                                   "422": err("Does not parse")}}},
        "/v1/templates/{name}": {
            "get": {"operationId": "getTemplate", "parameters": [path("name")],
                    "responses": {**ok("Template", {"$ref": "#/components/schemas/Template"}), **common, "404": err("Not found")}},
            "put": {"operationId": "updateTemplate", "parameters": [path("name")],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TemplateInput"}}}},
                    "responses": {**ok("Updated", {"$ref": "#/components/schemas/Template"}), **common, "404": err("Not found"),
                                  "422": err("Does not parse")}},
            "delete": {"operationId": "deleteTemplate", "parameters": [path("name")],
                       "responses": {"204": {"description": "Deleted"}, **common, "404": err("Not found")}}},
        "/v1/templates/{name}/render": {"post": {
            "operationId": "renderTemplate", "summary": "Preview a template with data", "parameters": [path("name")],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"data": {"type": "object"}}}}}},
            "responses": {**ok("Rendered", {"type": "object", "required": ["subject"], "properties": {
                "subject": {"type": "string"}, "text": {"type": ["string", "null"]}, "html": {"type": ["string", "null"]}}}), **common,
                          "404": err("Not found"), "422": err("Missing variables")}}},
        "/v1/accounts": {
            "get": {"operationId": "listAccounts", "summary": "Every account (operator keys), else the key's own",
                    "responses": {**ok("Accounts", {"type": "object", "required": ["accounts"], "properties": {
                        "accounts": {"type": "array", "items": {"$ref": "#/components/schemas/Account"}}}}), **common}},
            "post": {"operationId": "createAccount", "summary": "Create an account (operator keys); its SMTP password is shown once",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {
                         "name": account_name, "domains": {"type": "array", "items": {"type": "string"}},
                         "quota": {"$ref": "#/components/schemas/Quota"}, "egress_pool": {"type": "string"}}}}}},
                     "responses": {**ok("Created", {"$ref": "#/components/schemas/Account"}, "201"), **common, "409": err("Name taken")}}},
        "/v1/accounts/{name}": {
            "get": {"operationId": "getAccount", "parameters": [path("name", account_name)],
                    "responses": {**ok("The account", {"$ref": "#/components/schemas/Account"}), **common, "404": err("No such account for this key")}},
            "patch": {"operationId": "changeAccount", "summary": "Disable or enable, set quotas, egress pool, add domains (operator keys)",
                      "parameters": [path("name", account_name)],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                          "disabled": {"type": "boolean"}, "quota": {"$ref": "#/components/schemas/Quota"}, "egress_pool": {"type": "string"},
                          "add_domains": {"type": "array", "items": {"type": "string"}}}}}}},
                      "responses": {**ok("Changed", {"$ref": "#/components/schemas/Account"}), **common, "404": err("No such account")}}},
        "/v1/api-keys": {
            "get": {"operationId": "listAPIKeys", "responses": {**ok("Keys (never their secrets)", {"type": "object", "required": ["keys"], "properties": {
                "keys": {"type": "array", "items": {"$ref": "#/components/schemas/APIKey"}}}}), **common}},
            "post": {"operationId": "createAPIKey", "summary": "A key of this scope or lower; token and secret shown once",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["scope"], "properties": {
                         "scope": {"type": "string", "enum": ["send", "read", "admin", "operator"]}}}}}},
                     "responses": {**ok("Created", {"$ref": "#/components/schemas/APIKey"}, "201"), **common}}},
        "/v1/api-keys/{id}": {"delete": {"operationId": "revokeAPIKey", "parameters": [path("id")],
                                         "responses": {"204": {"description": "Revoked"}, **common, "404": err("No such key in this account")}}},
        "/v1/smtp-credentials": {
            "get": {"operationId": "listSMTPCredentials", "responses": {**ok("Usernames", {"type": "object", "required": ["credentials"], "properties": {
                "credentials": {"type": "array", "items": {"$ref": "#/components/schemas/SMTPCredential"}}}}), **common}},
            "post": {"operationId": "createSMTPCredential", "summary": "Another username and password, valid beside the others (rotation)",
                     "responses": {**ok("Created; the password is shown once", {"$ref": "#/components/schemas/SMTPCredential"}, "201"), **common,
                                   "409": err("Ten live extra credentials already")}}},
        "/v1/smtp-credentials/{username}": {"delete": {"operationId": "revokeSMTPCredential", "parameters": [path("username")],
                                                       "responses": {"204": {"description": "Revoked"}, **common, "404": err("No such username"),
                                                                     "409": err("The last live credential")}}},
        "/v1/users": {
            "get": {"operationId": "listConsoleUsers", "responses": {**ok("Console users", {"type": "object", "required": ["users"], "properties": {
                "users": {"type": "array", "items": {"$ref": "#/components/schemas/ConsoleUser"}}}}), **common}},
            "post": {"operationId": "createConsoleUser", "summary": "A console user of this account (operators: any role); first password shown once",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["email", "role"], "properties": {
                         "email": {"type": "string"}, "role": {"type": "string", "enum": ["operator", "admin", "member"]}}}}}},
                     "responses": {**ok("Created", {"$ref": "#/components/schemas/ConsoleUser"}, "201"), **common, "409": err("Email taken")}}},
        "/v1/users/{id}": {"delete": {"operationId": "deleteConsoleUser", "parameters": [path("id")],
                                      "responses": {"204": {"description": "Deleted"}, **common, "404": err("No such user in this account")}}},
        "/v1/queue": {"get": {"operationId": "listQueue", "summary": "Messages with a recipient still to deliver",
                              "parameters": [query("recipient_domain", {"type": "string"}), query("sender", {"type": "string"}),
                                             query("held", {"type": "string", "enum": ["true", "false"]}),
                                             query("limit", {"type": "integer", "minimum": 1, "maximum": 10000})],
                              "responses": {**ok("Queued messages", {"type": "object", "required": ["messages"], "properties": {
                                  "messages": {"type": "array", "items": {"$ref": "#/components/schemas/QueuedMessage"}}}}), **common}}},
        "/v1/queue/sites": {"get": {"operationId": "listQueueSites", "summary": "Pending recipients per destination domain",
                                    "responses": {**ok("Sites", {"type": "object", "required": ["sites"], "properties": {"sites": {"type": "array", "items": {
                                        "type": "object", "required": ["domain", "queued", "deferred", "held"], "properties": {
                                            "domain": {"type": "string"}, "queued": {"type": "integer"}, "deferred": {"type": "integer"},
                                            "held": {"type": "integer"}, "oldest": {"type": ["string", "null"], "format": "date-time"}}}}}}), **common}}},
        **{f"/v1/queue/{action}": {"post": {
            "operationId": f"{action}Queue", "summary": f"{summary}: by ids, by filter, or all (explicitly)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "ids": {"type": "array", "items": message_id, "maxItems": 1000}, "recipient_domain": {"type": "string"},
                "sender": {"type": "string"}, "held": {"type": "boolean"}, "all": {"type": "boolean"}}}}}},
            "responses": {**ok("Done", {"type": "object", "required": ["action", "changed"], "properties": {
                "action": {"type": "string"}, "changed": {"type": "integer"}}}), **common}}}
           for action, summary in (("hold", "Hold messages"), ("release", "Release held messages"),
                                   ("retry", "Make deferred recipients due now"), ("cancel", "Cancel pending recipients"))},
        "/v1/suppressions": {
            "get": {"operationId": "listSuppressions",
                    "parameters": [query("reason", {"type": "string", "enum": ["bounce", "complaint", "unsubscribe", "manual"]}),
                                   query("since", time), query("until", time), query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                                   query("offset", {"type": "integer", "minimum": 0, "maximum": 2147483647})],
                    "responses": {**ok("Suppressions", {"type": "object", "required": ["suppressions"], "properties": {
                        "suppressions": {"type": "array", "items": {"$ref": "#/components/schemas/Suppression"}},
                        "next_offset": {"type": ["integer", "null"]}}}), **common}},
            "post": {"operationId": "addSuppression",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["address"], "properties": {
                         "address": {"type": "string", "pattern": rf"^{ADDR}$"},
                         "reason": {"type": "string", "enum": ["bounce", "complaint", "unsubscribe", "manual"]},
                         "scope": {"type": "string", "enum": ["transactional", "marketing", "all"]}}}}}},
                     "responses": {**ok("Added", {"$ref": "#/components/schemas/Suppression"}, "201"), **common, "422": err("Invalid address")}}},
        "/v1/suppressions/export": {"get": {
            "operationId": "exportSuppressions", "summary": "The whole list as CSV (address,reason,scope,created_at,source)",
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **common}}},
        "/v1/suppressions/import": {"post": {
            "operationId": "importSuppressions",
            "summary": "Add addresses from CSV: a header row naming address (or email), reason, scope; or one address per line. "
                       "Good rows are added together; the others are reported by line",
            "parameters": [query("reason", {"type": "string", "enum": ["bounce", "complaint", "unsubscribe", "manual"],
                                            "description": "For rows that name none (default manual)"})],
            "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
            "responses": {**ok("What was imported", {"type": "object", "required": ["imported", "errors"], "properties": {
                "imported": {"type": "integer"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "line": {"type": "integer"}, "message": {"type": "string"}}}}}}), **common}}},
        "/v1/suppressions/{address}": {
            "get": {"operationId": "getSuppression", "parameters": [path("address")],
                    "responses": {**ok("Suppression", {"$ref": "#/components/schemas/Suppression"}), **common, "404": err("Not suppressed")}},
            "delete": {"operationId": "removeSuppression", "parameters": [path("address")],
                       "responses": {"204": {"description": "Released"}, **common, "404": err("Not suppressed")}}},
    },
}


# Contacts, lists, segments and campaigns (docs/campaigns.md).
obj = {"type": "object"}
field_value = {"type": ["string", "number", "boolean"]}
contact = {"type": "object", "required": ["id", "email", "fields"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "fields": {"type": "object", "additionalProperties": field_value},
    "lists": {"type": "array", "items": {"type": "integer"}}, "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"}}}
contact_import = {"type": "object", "required": ["id", "state"], "properties": {
    "id": {"type": "integer"}, "state": {"type": "string", "enum": ["running", "applying", "done", "failed"]},
    "rows_read": {"type": "integer"}, "rows_valid": {"type": "integer"}, "rows_invalid": {"type": "integer"}, "applied": {"type": "integer"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "message": {"type": "string"}}}}}}
segment_body = {"type": "object", "description": "A segment expression (docs/campaigns.md)",
                "examples": [{"all": [{"field": "誕生日", "part": "month", "op": "eq", "value": "this_month"},
                                      {"field": "ポイント", "op": "gte", "value": 1000}]}]}
saved_segment = {"type": "object", "required": ["id", "name", "segment"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "segment": obj}}
campaign = {"type": "object", "required": ["id", "name", "state"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "state": {"type": "string", "enum": ["draft", "scheduled", "sending", "paused", "testing", "sent", "cancelled"]},
    "progress": obj, "note": {"type": "string"}, "winner": {"type": "string"}, "decision": {"type": "string"}}}
id_path = path("id", {"type": "integer", "minimum": 1})
content_input = {"type": "object", "properties": {
    "from_name": {"type": "string"}, "subject": {"type": "string"}, "text": {"type": "string"}, "html": {"type": "string"},
    "template": {"type": "string"}, "delay_minutes": {"type": "integer", "minimum": 0, "maximum": 4320}}}
campaign_input = {"type": "object", "required": ["name", "from"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 200}, "from": {"$ref": "#/components/schemas/Address"},
    "from_name": {"type": "string"}, "reply_to": {"type": "string"}, "subject": {"type": "string"}, "text": {"type": "string"},
    "html": {"type": "string"}, "template": {"type": "string"}, "segment_id": {"type": "integer"}, "segment": segment_body,
    "lists": {"type": "array", "items": {"type": "integer"}}, "marketing": {"type": "boolean"}, "unsubscribe_group": {"type": "integer"},
    "track_opens": {"type": "boolean"}, "track_clicks": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
    "send_at": time, "daily_at": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}, "schedule": {"type": "boolean"},
    "ab_test": {"type": "object", "required": ["variants"], "properties": {
        "variants": {"type": "array", "items": content_input, "minItems": 2, "maxItems": 4},
        "test_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "criterion": {"type": "string", "enum": ["opens", "clicks", "manual"]},
        "wait_minutes": {"type": "integer", "minimum": 0, "maximum": 10080}, "wait_seconds": {"type": "integer", "minimum": 0}}}}}
not_found = {"404": err("Not found")}
conflict = {"409": err("Not in a state that allows it")}
csv_body = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
document["paths"].update({
    "/v1/contacts/fields": {
        "get": {"operationId": "listContactFields", "responses": {**ok("Fields", obj), **common}},
        "post": {"operationId": "addContactField", "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "type"], "properties": {
                "name": {"type": "string"}, "type": {"type": "string", "enum": ["text", "number", "date", "boolean"]}}}}}},
                 "responses": {**ok("Added", obj, "201"), **common, "409": err("Exists")}}},
    "/v1/contacts/fields/{name}": {"delete": {"operationId": "deleteContactField", "parameters": [path("name")],
                                              "responses": {"204": {"description": "Deleted with its values"}, **common, **not_found}}},
    "/v1/contacts": {
        "get": {"operationId": "listContacts", "parameters": [query("after", {"type": "integer", "minimum": 0}),
                                                              query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
                "responses": {**ok("Contacts in id order", {"type": "object", "required": ["contacts", "total"], "properties": {
                    "contacts": {"type": "array", "items": contact}, "total": {"type": "integer"}, "next": {"type": "string"}}}), **common}},
        "post": {"operationId": "upsertContact", "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["email"], "properties": {"email": {"type": "string"}, "fields": {
                "type": "object", "additionalProperties": field_value}}}}}},
                 "responses": {**ok("The contact", contact), **common, **not_found, "422": err("Invalid address")}}},
    "/v1/contacts/{email}": {
        "get": {"operationId": "getContact", "parameters": [path("email")], "responses": {**ok("The contact", contact), **common, **not_found}},
        "put": {"operationId": "putContact", "parameters": [path("email")], "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "properties": {"fields": {"type": "object", "additionalProperties": field_value}}}}}},
                "responses": {**ok("The contact", contact), **common, **not_found, "422": err("Invalid address")}},
        "delete": {"operationId": "deleteContact", "parameters": [path("email")],
                   "responses": {"204": {"description": "Deleted with its data"}, **common, **not_found}}},
    "/v1/contacts/export": {"get": {"operationId": "exportContacts", "summary": "Every contact as UTF-8 CSV (email, then the fields)",
                                    "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}, **common}}},
    "/v1/contacts/imports": {
        "get": {"operationId": "listContactImports", "responses": {**ok("Recent imports", obj), **common}},
        "post": {"operationId": "importContacts",
                 "summary": "Upsert contacts from CSV (UTF-8 or Shift_JIS), read in the background and applied all or nothing",
                 "parameters": [query("charset", {"type": "string", "enum": ["auto", "utf-8", "shift_jis"]}),
                                query("list", {"type": "integer", "minimum": 1})],
                 "requestBody": csv_body, "responses": {**ok("Started", contact_import, "202"), **common, **not_found, "413": err("Too large")}}},
    "/v1/contacts/imports/{id}": {"get": {"operationId": "getContactImport", "parameters": [id_path],
                                          "responses": {**ok("The import and its report", contact_import), **common, **not_found}}},
    "/v1/account/time-zone": {"put": {"operationId": "setTimeZone", "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["time_zone"], "properties": {"time_zone": {"type": "string", "examples": ["Asia/Tokyo"]}}}}}},
                                      "responses": {**ok("Set", obj), **common}}},
    "/v1/lists": {
        "get": {"operationId": "listLists", "responses": {**ok("Lists", obj), **common}},
        "post": {"operationId": "createList", "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
                 "responses": {**ok("Created", obj, "201"), **common}}},
    "/v1/lists/{id}": {"delete": {"operationId": "deleteList", "parameters": [id_path],
                                  "responses": {"204": {"description": "Deleted"}, **common, **not_found}}},
    "/v1/lists/{id}/members": {"post": {"operationId": "addListMembers", "parameters": [id_path], "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["emails"], "properties": {
            "emails": {"type": "array", "items": {"type": "string"}, "maxItems": 10000}}}}}},
                                        "responses": {**ok("Added", obj), **common, **not_found}}},
    "/v1/lists/{id}/members/remove": {"post": {"operationId": "removeListMembers", "parameters": [id_path], "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["emails"], "properties": {
            "emails": {"type": "array", "items": {"type": "string"}, "maxItems": 10000}}}}}},
                                               "responses": {**ok("Removed", obj), **common, **not_found}}},
    "/v1/segments": {
        "get": {"operationId": "listSegments", "responses": {**ok("Segments", obj), **common}},
        "post": {"operationId": "createSegment", "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "segment"], "properties": {"name": {"type": "string"}, "segment": segment_body}}}}},
                 "responses": {**ok("Created", saved_segment, "201"), **common}}},
    "/v1/segments/count": {"post": {"operationId": "countSegment", "summary": "The live preview: how many contacts a segment holds now",
                                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
                                        "segment": segment_body, "segment_id": {"type": "integer"}}}}}},
                                    "responses": {**ok("Counts", {"type": "object", "required": ["count", "sendable"], "properties": {
                                        "count": {"type": "integer"}, "sendable": {"type": "integer"},
                                        "sample": {"type": "array", "items": {"type": "string"}}}}), **common, **not_found}}},
    "/v1/segments/{id}": {
        "get": {"operationId": "getSegment", "parameters": [id_path], "responses": {**ok("Segment", saved_segment), **common, **not_found}},
        "put": {"operationId": "updateSegment", "parameters": [id_path], "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "segment"], "properties": {"name": {"type": "string"}, "segment": segment_body}}}}},
                "responses": {**ok("Updated", saved_segment), **common, **not_found}},
        "delete": {"operationId": "deleteSegment", "parameters": [id_path], "responses": {"204": {"description": "Deleted"}, **common, **not_found}}},
    "/v1/campaigns": {
        "get": {"operationId": "listCampaigns", "responses": {**ok("Campaigns, newest first", obj), **common}},
        "post": {"operationId": "createCampaign", "requestBody": {"required": True, "content": {"application/json": {"schema": campaign_input}}},
                 "responses": {**ok("Created", campaign, "201"), **common, **not_found, "422": err("Content does not parse")}}},
    "/v1/campaigns/{id}": {
        "get": {"operationId": "getCampaign", "parameters": [id_path], "responses": {**ok("Campaign and progress", campaign), **common, **not_found}},
        "delete": {"operationId": "deleteCampaign", "parameters": [id_path],
                   "responses": {"204": {"description": "Deleted"}, **common, **not_found, **conflict}}},
    **{f"/v1/campaigns/{{id}}/{action}": {"post": {"operationId": f"{action}Campaign", "parameters": [id_path],
                                                   "responses": {**ok("The campaign", campaign), **common, **not_found, **conflict}}}
       for action in ["schedule", "pause", "resume", "cancel"]},
    "/v1/campaigns/{id}/winner": {"post": {"operationId": "chooseCampaignWinner", "parameters": [id_path],
                                           "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                               "type": "object", "required": ["variant"], "properties": {"variant": {"type": "string"}}}}}},
                                           "responses": {**ok("The campaign", campaign), **common, **not_found, **conflict}}},
    "/v1/campaigns/{id}/report": {"get": {"operationId": "campaignReport", "parameters": [id_path],
                                          "responses": {**ok("Counts, rates, per variant and the A/B comparison", obj), **common, **not_found}}},
    "/v1/campaigns/{id}/report.csv": {"get": {"operationId": "campaignReportCSV", "parameters": [id_path],
                                              "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                                                            **common, **not_found}}},
})

text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
# The same text twice: the published document, and the API module's resource the server serves
# (an interop test checks that what is served is what is published).
(ROOT / "docs" / "openapi.json").write_text(text)
(ROOT / "Sources" / "API" / "Resources" / "openapi.json").write_text(text)

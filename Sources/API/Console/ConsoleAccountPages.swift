import Foundation
import Hummingbird
import MIME
import NIOCore
import Relay
import Spool
import Store

/// The account's pages: suppressions, keys and credentials, domains, the
/// queue, usage, the user's settings, and the operator's page.
struct ConsoleAccountPages: Sendable {
    let console: ConsoleRoutes
    var services: APIServices { console.services }
    var store: any HikyakuStore { services.store }

    func register(on routes: Routes) {
        registerSuppressions(on: routes)
        registerKeys(on: routes)
        registerDomains(on: routes)
        registerQueue(on: routes)
        registerSettings(on: routes)
        registerOperator(on: routes)
    }

    // MARK: Suppressions

    func registerSuppressions(on routes: Routes) {
        console.page(routes, .get, "/console/suppressions") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let t = console.views.catalog(viewer.language)
            let offset = min(max(request.query("offset").flatMap(Int.init) ?? 0, 0), 1_000_000)
            let list = try store.suppressions(accountID: account.id, containing: request.query("q"), offset: offset, limit: 50)
            let query = request.query("q").map { "q=" + ConsoleRoutes.percentEncoded($0) + "&" } ?? ""
            let context: [String: Any] = [
                "q": request.query("q") ?? "",
                "suppressions": list.map { item -> [String: Any] in
                    ["address": item.address, "reason": t["reason_\(item.reason.rawValue)"] ?? item.reason.rawValue,
                     "scope": t["scope_\(item.scope.rawValue)"] ?? item.scope.rawValue,
                     "at": ConsoleFormat.time(item.createdAt, viewer.timeZone), "source": item.source ?? ""]
                },
                "empty": list.isEmpty,
                "next": list.count == 50 ? "/console/suppressions?\(query)offset=\(offset + 50)" : false,
                "can_change": viewer.canChange,
                "scopes": Suppression.Scope.allCases.map { ["code": $0.rawValue, "label": t["scope_\($0.rawValue)"] ?? $0.rawValue] },
                "added": request.query("added").map { ConsoleFormat.number(Int($0) ?? 0) } ?? false,
                "rejected": request.query("rejected").map { ConsoleFormat.number(Int($0) ?? 0) } ?? false,
                "rejected_lines": request.query("lines")?.split(separator: ",").compactMap { Int($0) }.map(String.init)
                    .joined(separator: ", ") ?? "",
            ]
            return console.render("suppressions", context, viewer: viewer, title: "nav_suppressions", current: "nav_suppressions",
                                  path: request.uri.path)
        }
        console.post(routes, "/console/suppressions", limit: SuppressionCSV.maximumBytes) { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            let scope = form["scope"].flatMap(Suppression.Scope.init(rawValue:)) ?? .all
            // One address per line (a pasted column from a spreadsheet), or a CSV file with a header row (an export).
            let parsed = SuppressionCSV.parse(form["addresses"] ?? "", scope: scope, source: "console user \(viewer.user.email)")
            try store.suppress(parsed.suppressions, accountID: account.id)
            let lines = parsed.errors.prefix(20).map { String($0.line) }.joined(separator: ",")
            return ConsoleHeaders.redirect("/console/suppressions?added=\(parsed.suppressions.count)"
                                           + (parsed.errors.isEmpty ? "" : "&rejected=\(parsed.errors.count)&lines=\(lines)"))
        }
        console.post(routes, "/console/suppressions/remove") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let address = form["address"] else { throw ConsoleRefusal(status: .badRequest, key: "error_address") }
            try? store.unsuppress(accountID: account.id, address: address.lowercased())
            return ConsoleHeaders.redirect("/console/suppressions")
        }
        console.page(routes, .get, "/console/suppressions.csv") { _, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            return ConsoleAccountPages.csv(try SuppressionCSV.export(store: store, accountID: account.id), name: "suppressions.csv")
        }
    }

    static func csv(_ text: String, name: String) -> Response {
        var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\""]
        ConsoleHeaders.apply(&headers)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: Keys and credentials

    func registerKeys(on routes: Routes) {
        console.page(routes, .get, "/console/keys") { request, _, viewer in try keysPage(request, viewer, created: nil) }
        console.post(routes, "/console/keys") { form, _, viewer, request in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let scope = form["scope"].flatMap(APIKeyScope.init(rawValue:)), scope <= viewer.user.role.scope, scope != .operator else {
                throw ConsoleRefusal(status: .badRequest, key: "error_scope")
            }
            let created = try store.createAPIKey(accountNamed: account.name, scope: scope)
            // Shown on this response only: never again, not even to this user.
            return try keysPage(request, viewer, created: [("token", created.token), ("aws_access_key_id", created.key.keyID),
                                                           ("aws_secret", created.secret)])
        }
        console.post(routes, "/console/keys/revoke") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let id = form["id"], try store.apiKeys(accountID: account.id).contains(where: { $0.keyID == id }) else {
                throw APIError.notFound("key")
            }
            try store.revokeAPIKey(id)
            return ConsoleHeaders.redirect("/console/keys")
        }
        console.post(routes, "/console/smtp-credentials") { _, _, viewer, request in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            do {
                let created = try store.createSMTPCredential(accountID: account.id)
                return try keysPage(request, viewer, created: [("smtp_username", created.credential.username),
                                                               ("smtp_password", created.password)])
            } catch is SMTPCredentialError {
                throw ConsoleRefusal(status: .conflict, key: "error_too_many_credentials")
            }
        }
        console.post(routes, "/console/smtp-credentials/revoke") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            do {
                guard let username = form["username"], try store.revokeSMTPCredential(username: username, accountID: account.id) else {
                    throw APIError.notFound("credential")
                }
            } catch is SMTPCredentialError {
                throw ConsoleRefusal(status: .conflict, key: "error_last_credential")
            }
            return ConsoleHeaders.redirect("/console/keys")
        }
    }

    func keysPage(_ request: Request, _ viewer: ConsoleViewer, created: [(String, String)]?) throws -> Response {
        try ConsoleRoutes.requireChange(viewer)
        let account = try ConsoleRoutes.account(viewer)
        let t = console.views.catalog(viewer.language)
        let context: [String: Any] = [
            "keys": try store.apiKeys(accountID: account.id).map { key -> [String: Any] in
                ["id": key.keyID, "scope": t["scope_key_\(key.scope.rawValue)"] ?? key.scope.rawValue,
                 "created": ConsoleFormat.time(key.createdAt, viewer.timeZone), "revoked": key.revoked]
            },
            "scopes": APIKeyScope.allCases.filter { $0 <= viewer.user.role.scope && $0 != .operator }.map {
                ["code": $0.rawValue, "label": t["scope_key_\($0.rawValue)"] ?? $0.rawValue]
            },
            "credentials": try store.smtpCredentials(accountID: account.id).map { credential -> [String: Any] in
                ["username": credential.username, "created": ConsoleFormat.time(credential.createdAt, viewer.timeZone),
                 "revoked": credential.revokedAt != nil, "primary": credential.primary]
            },
            "created": (created ?? []).map { ["label": t["secret_\($0.0)"] ?? $0.0, "value": $0.1] }, "has_created": created != nil,
        ]
        return console.render("keys", context, viewer: viewer, title: "nav_keys", current: "nav_keys", path: "/console/keys")
    }

    // MARK: Domains

    func registerDomains(on routes: Routes) {
        console.page(routes, .get, "/console/domains") { request, _, viewer in try domainsPage(request, viewer, checked: nil) }
        // The compliance report (SPF, DKIM, DMARC, reverse DNS, TLS, unsubscribe, complaints): a read, open to every role.
        console.page(routes, .get, "/console/domains/compliance") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let domain = (request.query("domain") ?? "").lowercased()
            guard let fresh = try store.account(id: account.id), fresh.domains.contains(domain) else { throw APIError.notFound("domain") }
            guard let compliance = console.compliance else { throw ConsoleRefusal(status: .serviceUnavailable, key: "error_unavailable") }
            let object = (try? JSONSerialization.jsonObject(with: Data(try await compliance(domain, account.id)))) as? [String: Any] ?? [:]
            return try domainsPage(request, viewer, checked: nil, compliance: (domain, object))
        }
        console.post(routes, "/console/domains/verify") { form, _, viewer, request in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            let domain = (form["domain"] ?? "").lowercased()
            guard try store.dkimKeys(domain: domain, accountID: account.id).isEmpty == false else { throw APIError.notFound("domain") }
            guard let verification = console.verification else { throw ConsoleRefusal(status: .serviceUnavailable, key: "error_unavailable") }
            let result = try await verification(domain, account.id)
            let object = (try? JSONSerialization.jsonObject(with: Data(result))) as? [String: Any] ?? [:]
            return try domainsPage(request, viewer, checked: (domain, object))
        }
    }

    func domainsPage(_ request: Request, _ viewer: ConsoleViewer, checked: (String, [String: Any])?,
                     compliance: (String, [String: Any])? = nil) throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        let fresh = try store.account(id: account.id) ?? account
        let keys = try store.dkimKeys(accountID: account.id)
        let t = console.views.catalog(viewer.language)
        let context: [String: Any] = [
            "can_change": viewer.canChange,
            "domains": fresh.domains.map { domain -> [String: Any] in
                var entry: [String: Any] = [
                    "domain": domain, "verified": fresh.verifiedDomains.contains(domain),
                    "records": keys.filter { $0.domain == domain }.map { key -> [String: Any] in
                        ["name": "\(key.selector)._domainkey.\(key.domain)", "type": "TXT",
                         "value": "v=DKIM1; k=\(key.algorithm); p=\(key.publicKey)", "active": key.active]
                    },
                    "has_key": keys.contains { $0.domain == domain }, "has_records": keys.contains { $0.domain == domain },
                ]
                if let (reportDomain, report) = compliance, reportDomain == domain {
                    entry["has_compliance"] = true
                    entry["compliance"] = ((report["checks"] as? [[String: Any]]) ?? []).map { check -> [String: Any] in
                        let status = check["status"] as? String ?? "fail"
                        var row: [String: Any] = ["name": check["name"] as? String ?? "", "status": t["compliance_\(status)"] ?? status,
                                                  "ok": status == "pass", "detail": check["detail"] as? String ?? ""]
                        row["fix"] = check["fix"] as? String
                        return row
                    }
                }
                if let (checkedDomain, result) = checked, checkedDomain == domain {
                    entry["checked"] = true
                    entry["check_verified"] = result["verified"] as? Bool ?? false
                    entry["checks"] = ((result["records"] as? [[String: Any]]) ?? []).map { record -> [String: Any] in
                        let status = record["status"] as? String ?? "unknown"
                        return ["name": record["name"] as? String ?? "", "type": record["type"] as? String ?? "",
                                "purpose": record["purpose"] as? String ?? "", "expected": record["expected"] as? String ?? "",
                                "status": t["check_\(status)"] ?? status, "ok": status == "ok", "detail": record["detail"] as? String ?? ""]
                    }
                }
                return entry
            },
        ]
        return console.render("domains", context, viewer: viewer, title: "nav_domains", current: "nav_domains", path: request.uri.path)
    }

    // MARK: Queue

    func registerQueue(on routes: Routes) {
        console.page(routes, .get, "/console/queue") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let domain = request.query("domain")
            let sites = try services.index.sites(accountID: account.id)
            let messages = try services.index.summaries(QueueSelection(accountID: account.id, recipientDomain: domain), limit: 100)
            let courier = console.auth.options.courier
            // The delivery engine's sites are the server's, shared by every account. An operator sees them all; an
            // account sees only the named providers' (gmail, docomo…), summed over source addresses: a site made for
            // one MX set, or named after a source address, would tell one tenant where others send and from where.
            let all = await courier?.siteActivity(limit: viewer.isOperator ? 50 : 10_000) ?? []
            let activity = viewer.isOperator ? all : SiteActivity.byProvider(all)
            var context: [String: Any] = [
                "can_change": viewer.canChange, "has_sites": !sites.isEmpty,
                "sites": sites.map { site -> [String: Any] in
                    ["domain": site.domain, "rule": courier?.shapingRule(forDomain: site.domain) ?? "",
                     "queued": ConsoleFormat.number(site.queued), "deferred": ConsoleFormat.number(site.deferred),
                     "held": ConsoleFormat.number(site.held), "oldest": site.oldest.map { ConsoleFormat.time($0, viewer.timeZone) } ?? ""]
                },
                "delivery_on": courier != nil, "has_activity": !activity.isEmpty,
                "activity": activity.map { site -> [String: Any] in
                    let limits = site.limits
                    let rate = [limits.maxMessagesPerMinute > 0 ? "\(ConsoleFormat.number(limits.maxMessagesPerMinute))/min" : nil,
                                limits.maxMessagesPerHour > 0 ? "\(ConsoleFormat.number(limits.maxMessagesPerHour))/h" : nil]
                        .compactMap { $0 }.joined(separator: ", ")
                    return ["name": site.name, "open": ConsoleFormat.number(site.openConnections), "idle": ConsoleFormat.number(site.idleConnections),
                            "max": limits.maxConnections > 0 ? ConsoleFormat.number(limits.maxConnections) : "∞",
                            "waiting": ConsoleFormat.number(site.waiting), "rate": rate.isEmpty ? "—" : rate,
                            "postponements": ConsoleFormat.number(site.postponements)]
                },
                "messages": messages.map { message -> [String: Any] in
                    ["id": message.id.rawValue, "received": ConsoleFormat.time(message.receivedAt, viewer.timeZone), "from": message.sender,
                     "pending": message.pendingCount, "recipients": message.recipientCount, "held": message.held]
                },
                "done": request.query("done").map { ConsoleFormat.number(Int($0) ?? 0) } ?? false,
            ]
            context["domain"] = domain  // absent, not empty: Mustache takes "" as true
            return console.render("queue", context, viewer: viewer, title: "nav_queue", current: "nav_queue", path: request.uri.path)
        }
        console.post(routes, "/console/queue") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            let ids = form.all("id").compactMap(MessageID.init)
            let domain = form["domain"]
            guard !ids.isEmpty || domain != nil else { throw ConsoleRefusal(status: .badRequest, key: "error_queue_selection") }
            let selection = QueueSelection(accountID: account.id, ids: ids.isEmpty ? nil : Array(ids.prefix(1000)), recipientDomain: domain)
            guard let action = form["action"].flatMap(ManagementRoutes.QueueAction.init(rawValue:)) else {
                throw ConsoleRefusal(status: .badRequest, key: "error_queue_selection")
            }
            let changed = try action.apply(to: selection, index: services.index, by: "console user \(viewer.user.email)")
            return ConsoleHeaders.redirect("/console/queue?done=\(changed)")
        }
        console.page(routes, .get, "/console/usage") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let t = console.views.catalog(viewer.language)
            try? services.meter.flush(waitingAtMost: 2)
            let until = Date()
            let days = try store.dailyUsage(accountID: account.id, since: until.addingTimeInterval(-31 * 86400), until: until)
            let monthPrefix = String(MailDate.local(until, offset: 0, style: .seconds).prefix(7))
            let month = days.filter { $0.day.hasPrefix(monthPrefix) }
            let chart = SVGChart(title: t["usage_chart"] ?? "", xLabel: t["chart_day"] ?? "", yLabel: t["recipients"] ?? "",
                                 labels: days.map { String($0.day.suffix(5)) },
                                 series: [SVGChart.Series(name: t["recipients"] ?? "", colour: SVGChart.palette[0], values: days.map(\.recipients))])
            let quota = (try store.account(id: account.id) ?? account).quota
            let context: [String: Any] = [
                "chart_svg": chart.svg, "chart_table": chart.table(period: t["period"] ?? ""),
                "month_messages": ConsoleFormat.number(month.reduce(0) { $0 + $1.messages }),
                "month_recipients": ConsoleFormat.number(month.reduce(0) { $0 + $1.recipients }),
                "month_bytes": ConsoleFormat.number(month.reduce(0) { $0 + $1.bytes }),
                "sent_24h": ConsoleFormat.number(services.meter.sentLast24Hours(accountID: account.id)),
                "max_24h": quota.max24HourSend < 0 ? (t["unlimited"] ?? "") : ConsoleFormat.number(quota.max24HourSend),
                "max_rate": quota.maxSendRate < 0 ? (t["unlimited"] ?? "") : String(quota.maxSendRate),
                "sandbox": quota.sandbox,
            ]
            return console.render("usage", context, viewer: viewer, title: "nav_usage", current: "nav_usage", path: request.uri.path)
        }
    }

    // MARK: Settings

    func registerSettings(on routes: Routes) {
        console.page(routes, .get, "/console/settings") { request, _, viewer in
            try settingsPage(request, viewer, notice: request.query("changed") != nil ? "password_changed" : nil)
        }
        console.post(routes, "/console/settings/password") { form, _, viewer, request in
            guard try checked(viewer, { try store.authenticateConsoleUser(email: viewer.user.email, password: form["current"] ?? "") != nil }) else {
                return try settingsPage(request, viewer, error: "error_current_password", status: .badRequest)
            }
            guard let new = form["new"], new == form["confirm"] else {
                return try settingsPage(request, viewer, error: "error_password_mismatch", status: .badRequest)
            }
            do { try store.setConsolePassword(userID: viewer.user.id, password: new) } catch is ConsoleUserError {
                return try settingsPage(request, viewer, error: "error_weak_password", status: .badRequest)
            }
            // Every session ended with the change; this browser logs in anew.
            let token = try store.openConsoleSession(userID: viewer.user.id)
            return ConsoleHeaders.redirect("/console/settings?changed=1",
                                           cookies: [console.auth.cookie(ConsoleAuth.sessionCookie, token)])
        }
        console.post(routes, "/console/settings/totp") { form, _, viewer, request in
            // Setting up (or replacing) a second factor takes the password: a borrowed session alone cannot lock the owner out.
            guard try !store.hasTOTP(userID: viewer.user.id) else {
                return try settingsPage(request, viewer, error: "error_totp_already", status: .conflict)
            }
            guard try checked(viewer, { try store.authenticateConsoleUser(email: viewer.user.email, password: form["current"] ?? "") != nil }) else {
                return try settingsPage(request, viewer, error: "error_current_password", status: .badRequest)
            }
            let enrollment = try store.beginTOTP(userID: viewer.user.id)
            return try settingsPage(request, viewer, enrollment: enrollment)
        }
        console.post(routes, "/console/settings/totp/confirm") { form, _, viewer, request in
            guard try checked(viewer, { try store.confirmTOTP(userID: viewer.user.id, code: form["code"] ?? "") }) else {
                return try settingsPage(request, viewer, error: "error_totp_code", status: .badRequest)
            }
            return try settingsPage(request, viewer, notice: "totp_enabled")
        }
        console.post(routes, "/console/settings/totp/disable") { form, _, viewer, request in
            // Turning it off takes a current code: a borrowed session alone cannot remove the second factor.
            guard try checked(viewer, { try store.checkTOTP(userID: viewer.user.id, code: form["code"]) }) else {
                return try settingsPage(request, viewer, error: "error_totp_code", status: .badRequest)
            }
            try store.disableTOTP(userID: viewer.user.id)
            return try settingsPage(request, viewer, notice: "totp_disabled")
        }
        console.post(routes, "/console/settings/zone") { form, _, viewer, _ in
            guard let zone = form["zone"], TimeZone(identifier: zone) != nil else { throw ConsoleRefusal(status: .badRequest, key: "error_zone") }
            _ = viewer
            return ConsoleHeaders.redirect("/console/settings", cookies: [
                console.auth.cookie(ConsoleAuth.zoneCookie, ConsoleRoutes.percentEncoded(zone), maxAge: 365 * 86400)])
        }
    }

    /// A password or code check from a logged-in user, counted by the login throttle per user: a session
    /// cannot be used to guess a password or a six-digit code, or to run scrypt without end.
    func checked(_ viewer: ConsoleViewer, _ check: () throws -> Bool) throws -> Bool {
        let key = "user:\(viewer.user.id)"
        guard console.auth.byUser.begin(key) == .proceed else { throw ConsoleRefusal(status: .tooManyRequests, key: "login_throttled") }
        let passed: Bool
        do { passed = try check() } catch {
            console.auth.byUser.end(key, succeeded: false)
            throw error
        }
        console.auth.byUser.end(key, succeeded: passed)
        return passed
    }

    func settingsPage(_ request: Request, _ viewer: ConsoleViewer, notice: String? = nil, error: String? = nil,
                      enrollment: TOTPEnrollment? = nil, status: HTTPResponse.Status = .ok) throws -> Response {
        let t = console.views.catalog(viewer.language)
        let zones = ["Asia/Tokyo", "UTC", "Asia/Seoul", "Asia/Shanghai", "Asia/Singapore", "Europe/London", "Europe/Berlin",
                     "America/New_York", "America/Los_Angeles"]
        let context: [String: Any] = [
            "notice": notice.map { t[$0] ?? $0 } ?? false, "error": error.map { t[$0] ?? $0 } ?? false,
            "totp_enabled": try store.hasTOTP(userID: viewer.user.id),
            "enrollment": enrollment.map { ["secret": $0.secret, "uri": $0.uri] } as Any? ?? false,
            "zones": zones.map { ["zone": $0, "selected": $0 == viewer.timeZone.identifier || ($0 == "UTC" && viewer.timeZone == .gmt)] },
        ]
        return console.render("settings", context, viewer: viewer, title: "nav_settings", current: "nav_settings", path: "/console/settings",
                              status: status)
    }

    // MARK: Operator

    func registerOperator(on routes: Routes) {
        console.page(routes, .get, "/console/operator") { request, _, viewer in try operatorPage(request, viewer, created: nil) }
        console.post(routes, "/console/operator/accounts") { form, _, viewer, _ in
            guard viewer.isOperator else { throw ConsoleRefusal(status: .forbidden, key: "error_forbidden") }
            guard let name = form["name"], let account = try store.account(named: name) else { throw APIError.notFound("account") }
            try store.setDisabled(form["action"] == "disable", name: account.name)
            return ConsoleHeaders.redirect("/console/operator")
        }
        console.post(routes, "/console/operator/users") { form, _, viewer, request in
            guard viewer.isOperator else { throw ConsoleRefusal(status: .forbidden, key: "error_forbidden") }
            guard let role = form["role"].flatMap(ConsoleRole.init(rawValue:)) else { throw ConsoleRefusal(status: .badRequest, key: "error_role") }
            let account = role == .operator ? nil : try form["account"].flatMap { try store.account(named: $0) }
            do {
                let created = try store.createConsoleUser(email: form["email"] ?? "", role: role, accountID: account?.id)
                return try operatorPage(request, viewer, created: (created.user.email, created.password))
            } catch let error as ConsoleUserError {
                throw APIError.badRequest(error.description)
            }
        }
    }

    func operatorPage(_ request: Request, _ viewer: ConsoleViewer, created: (String, String)?) throws -> Response {
        guard viewer.isOperator else { throw ConsoleRefusal(status: .forbidden, key: "error_forbidden") }
        let t = console.views.catalog(viewer.language)
        let accounts = try store.accounts()
        let names = Dictionary(accounts.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let context: [String: Any] = [
            "accounts": accounts.map { account -> [String: Any] in
                ["name": account.name, "disabled": account.disabled, "domains": account.domains.joined(separator: ", "),
                 "created": ConsoleFormat.time(account.createdAt, viewer.timeZone),
                 "sent_24h": ConsoleFormat.number(services.meter.sentLast24Hours(accountID: account.id))]
            },
            "users": try store.consoleUsers().map { user -> [String: Any] in
                ["email": user.email, "role": t["role_\(user.role.rawValue)"] ?? user.role.rawValue,
                 "account": user.accountID.flatMap { names[$0] } ?? "", "disabled": user.disabled]
            },
            "roles": ConsoleRole.allCases.map { ["code": $0.rawValue, "label": t["role_\($0.rawValue)"] ?? $0.rawValue] },
            "health": (console.auth.options.health?() ?? []).map { ["name": t["health_\($0.0)"] ?? $0.0, "value": $0.1] },
            "created": created.map { ["email": $0.0, "password": $0.1] } as Any? ?? false,
        ]
        return console.render("operator", context, viewer: viewer, title: "nav_operator", current: "nav_operator", path: "/console/operator")
    }
}

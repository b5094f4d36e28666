import Foundation
import Hummingbird
import NIOCore
import Relay
import Spool
import Store

/// The web console under `/console/`: the same operations as the
/// management API, for people. Pages are rendered on the server (Mustache,
/// escaped) with SVG charts; a little plain JavaScript adds copy buttons.
/// Every state change is a POST carrying the session's CSRF token; every
/// read is scoped to the viewer's account, so another account's message id
/// is "not found".
struct ConsoleRoutes: Sendable {
    let services: APIServices
    let views: ConsoleViews
    let auth: ConsoleAuth
    let verification: APIServer.DomainVerification?
    let compliance: APIServer.ComplianceReport?

    typealias PageHandler = @Sendable (Request, APIRequestContext, ConsoleViewer) async throws -> Response

    func register(on routes: Routes) {
        routes.get("/console/static/:file") { _, context in
            guard let file = views.staticFiles[try context.parameters.require("file")] else { throw APIError.notFound("file") }
            var headers: HTTPFields = [.contentType: file.type, .cacheControl: "max-age=3600"]
            headers[.xContentTypeOptions] = "nosniff"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.bytes))
        }
        routes.get("/console/login") { request, _ in loginPage(request, error: nil) }
        routes.post("/console/login") { request, context in try await login(request, context) }
        routes.get("/console/language/:code") { request, context in
            let language = ConsoleLanguage(rawValue: try context.parameters.require("code")) ?? .ja
            return ConsoleHeaders.redirect(ConsoleRoutes.localPath(request.query("next")),
                                           cookies: [auth.cookie(ConsoleAuth.languageCookie, language.rawValue, maxAge: 365 * 86400)])
        }
        page(routes, .get, "/console/") { request, _, viewer in try overview(request, viewer) }
        post(routes, "/console/logout") { _, _, viewer, request in
            if let token = ConsoleAuth.cookieValue(request, ConsoleAuth.sessionCookie) { try services.store.closeConsoleSession(token: token) }
            _ = viewer
            return ConsoleHeaders.redirect("/console/login", cookies: [auth.expired(ConsoleAuth.sessionCookie)])
        }
        post(routes, "/console/logout-all") { _, _, viewer, _ in
            try services.store.closeConsoleSessions(userID: viewer.user.id)
            return ConsoleHeaders.redirect("/console/login", cookies: [auth.expired(ConsoleAuth.sessionCookie)])
        }
        page(routes, .get, "/console/choose-account") { request, _, viewer in
            let name = request.query("name") ?? ""
            guard viewer.isOperator, viewer.accounts.contains(where: { $0.name == name }) else { throw APIError.notFound("account") }
            return ConsoleHeaders.redirect(ConsoleRoutes.localPath(request.query("next")),
                                           cookies: [auth.cookie(ConsoleAuth.accountCookie, name)])
        }
        ConsoleLogPages(console: self).register(on: routes)
        ConsoleAccountPages(console: self).register(on: routes)
        ConsoleTemplatePages(console: self).register(on: routes)
        ConsoleCampaignPages(console: self).register(on: routes)
    }

    // MARK: Plumbing

    /// A page for a logged-in viewer; others are sent to the login page.
    func page(_ routes: Routes, _ method: HTTPRequest.Method, _ path: String, _ handler: @escaping PageHandler) {
        let wrapped: Routes.Handler = { request, context in
            let viewer: ConsoleViewer?
            do { viewer = try auth.viewer(request) } catch { return errorPage(request, nil, status: .serviceUnavailable, key: "error_store") }
            guard let viewer else {
                return ConsoleHeaders.redirect("/console/login?next=" + ConsoleRoutes.percentEncoded(request.uri.path))
            }
            do {
                return try await handler(request, context, viewer)
            } catch let error as APIError {
                return errorPage(request, viewer, status: error.status, message: error.message)
            } catch let error as ConsoleRefusal {
                return errorPage(request, viewer, status: error.status, key: error.key)
            } catch {
                context.logger.error("console page failed", metadata: ["error": "\(error)"])
                return errorPage(request, viewer, status: .internalServerError, key: "error_internal")
            }
        }
        switch method {
        case .post: routes.post(path, wrapped)
        default: routes.get(path, wrapped)
        }
    }

    /// A form's POST: the body read (bounded), the CSRF token checked, then `handler`.
    func post(_ routes: Routes, _ path: String, limit: Int = 64 << 10,
              _ handler: @escaping @Sendable (FormFields, APIRequestContext, ConsoleViewer, Request) async throws -> Response) {
        page(routes, .post, path) { request, context, viewer in
            let body = try await services.gate.readBody(request, limit: limit)
            let form = FormFields(String(decoding: body, as: UTF8.self))
            guard ConsoleAuth.checkCSRF(form, viewer) else { throw ConsoleRefusal(status: .forbidden, key: "error_csrf") }
            return try await handler(form, context, viewer, request)
        }
    }

    /// The viewer's account, or a refusal when an operator has none to look at.
    static func account(_ viewer: ConsoleViewer) throws -> Account {
        guard let account = viewer.account else { throw ConsoleRefusal(status: .notFound, key: "error_no_account") }
        return account
    }

    static func requireChange(_ viewer: ConsoleViewer) throws {
        guard viewer.canChange else { throw ConsoleRefusal(status: .forbidden, key: "error_forbidden") }
    }

    /// The layout's context: navigation, the user, the language switch, the CSRF token for forms.
    func layout(_ viewer: ConsoleViewer?, language: ConsoleLanguage, title: String, current: String, path: String) -> [String: Any] {
        let t = views.catalog(language)
        var context: [String: Any] = ["t": t, "lang": language.rawValue, "title": t[title] ?? title]
        context["languages"] = ConsoleLanguage.allCases.map { other in
            ["code": other.rawValue, "label": t["language_\(other.rawValue)"] ?? other.rawValue, "current": other == language,
             "href": "/console/language/\(other.rawValue)?next=" + ConsoleRoutes.percentEncoded(path)] as [String: Any]
        }
        guard let viewer else { return context }
        var nav: [(String, String)] = [("/console/", "nav_overview"), ("/console/log", "nav_log"), ("/console/bounces", "nav_bounces"),
                                       ("/console/suppressions", "nav_suppressions"), ("/console/domains", "nav_domains"),
                                       ("/console/queue", "nav_queue"), ("/console/usage", "nav_usage")]
        nav.insert(("/console/templates", "nav_templates"), at: 4)
        nav.insert(("/console/contacts", "nav_contacts"), at: 5)
        nav.insert(("/console/campaigns", "nav_campaigns"), at: 6)
        if viewer.canChange { nav.insert(("/console/keys", "nav_keys"), at: 8) }
        if services.eventsOut != nil { nav.insert(("/console/webhooks", "nav_webhooks"), at: nav.count - 1) }
        if viewer.isOperator { nav.append(("/console/operator", "nav_operator")) }
        nav.append(("/console/settings", "nav_settings"))
        context["nav"] = nav.map { href, key in ["href": href, "label": t[key] ?? key, "current": key == current] as [String: Any] }
        context["user"] = ["email": viewer.user.email, "role": t["role_\(viewer.user.role.rawValue)"] ?? viewer.user.role.rawValue]
        context["csrf"] = viewer.session.csrfToken
        context["account_name"] = viewer.account?.name ?? ""
        if viewer.isOperator {
            context["has_accounts"] = !viewer.accounts.isEmpty
            context["accounts"] = viewer.accounts.map { ["name": $0.name, "selected": $0.id == viewer.account?.id] as [String: Any] }
            context["next"] = path
        }
        return context
    }

    func render(_ template: String, _ context: [String: Any], viewer: ConsoleViewer, title: String, current: String,
                path: String, status: HTTPResponse.Status = .ok) -> Response {
        ConsoleHeaders.html(views.page(template, context, layout: layout(viewer, language: viewer.language, title: title,
                                                                          current: current, path: path)), status: status)
    }

    func errorPage(_ request: Request, _ viewer: ConsoleViewer?, status: HTTPResponse.Status, key: String? = nil,
                   message: String? = nil) -> Response {
        let language = viewer?.language ?? ConsoleAuth.language(request)
        let t = views.catalog(language)
        let context: [String: Any] = ["message": message ?? t[key ?? "error_internal"] ?? "", "status": status.code]
        return ConsoleHeaders.html(views.page("error", context, layout: layout(viewer, language: language, title: "error_title",
                                                                               current: "", path: request.uri.path)), status: status)
    }

    // MARK: Login

    func loginPage(_ request: Request, error: String?, status: HTTPResponse.Status = .ok) -> Response {
        let language = ConsoleAuth.language(request)
        // Login CSRF: the form's token must match a cookie only this site could set.
        let token = CredentialGenerator.password()
        var context: [String: Any] = ["login_token": token, "next": ConsoleRoutes.localPath(request.query("next"))]
        if let error { context["error"] = views.catalog(language)[error] ?? error }
        return ConsoleHeaders.html(views.page("login", context, layout: layout(nil, language: language, title: "login_title",
                                                                               current: "", path: "/console/login")),
                                   status: status, cookies: [auth.cookie(ConsoleAuth.loginCookie, token, maxAge: 3600)])
    }

    func login(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let body = try await services.gate.readBody(request, limit: 8 << 10)
        let form = FormFields(String(decoding: body, as: UTF8.self))
        guard let presented = form["login_token"], let expected = ConsoleAuth.cookieValue(request, ConsoleAuth.loginCookie),
              constantTimeEqual(Array(presented.utf8), Array(expected.utf8)) else {
            return loginPage(request, error: "error_csrf", status: .forbidden)
        }
        let email = (form["email"] ?? "").lowercased()
        let password = form["password"] ?? ""
        let client = context.clientAddress
        // Over-long input is no login and costs no hash, and the throttles keep no key for it.
        guard email.count <= 254, password.utf8.count <= 1024 else { return loginPage(request, error: "login_failed", status: .unauthorized) }
        // Per address and per user: a guesser moving between accounts, or between addresses, is stopped either way.
        if auth.byAddress.isBlocked(client) || auth.byUser.isBlocked(email) {
            context.logger.notice("console login throttled", metadata: ["client": "\(client)"])
            return loginPage(request, error: "login_throttled", status: .tooManyRequests)
        }
        guard auth.byAddress.begin(client) == .proceed else { return loginPage(request, error: "login_throttled", status: .tooManyRequests) }
        // Each counter's `end` only after its own `begin` went through: a success takes back only an attempt it counted.
        guard auth.byUser.begin(email) == .proceed else {
            auth.byAddress.end(client, succeeded: false)
            return loginPage(request, error: "login_throttled", status: .tooManyRequests)
        }
        let user: ConsoleUser?
        do {
            let candidate = try services.store.authenticateConsoleUser(email: email, password: password)
            // With a second factor set up, the password alone is a failed login (RFC 6238 code, each usable once).
            if let candidate, try services.store.checkTOTP(userID: candidate.id, code: form["code"]) {
                user = candidate
            } else {
                user = nil
            }
        } catch {
            auth.byAddress.end(client, succeeded: false)
            auth.byUser.end(email, succeeded: false)
            throw error
        }
        auth.byAddress.end(client, succeeded: user != nil)
        auth.byUser.end(email, succeeded: user != nil)
        guard let user else {
            context.logger.notice("console login failed", metadata: ["client": "\(client)"])
            return loginPage(request, error: "login_failed", status: .unauthorized)
        }
        // A new session id at every login (no fixation); an old cookie's session ends.
        if let old = ConsoleAuth.cookieValue(request, ConsoleAuth.sessionCookie) { try services.store.closeConsoleSession(token: old) }
        let token = try services.store.openConsoleSession(userID: user.id)
        context.logger.info("console login", metadata: ["user": "\(user.id)", "client": "\(client)"])
        return ConsoleHeaders.redirect(ConsoleRoutes.localPath(form["next"]),
                                       cookies: [auth.cookie(ConsoleAuth.sessionCookie, token), auth.expired(ConsoleAuth.loginCookie)])
    }

    // MARK: Overview

    func overview(_ request: Request, _ viewer: ConsoleViewer) throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        let t = views.catalog(viewer.language)
        let now = Date()
        let kinds: [DeliveryEvent.Kind] = [.accepted, .delivered, .deferred, .bounced, .complained, .opened, .clicked]
        // Periods start on the viewer's hours and days, not UTC's.
        let offset = viewer.timeZone.secondsFromGMT(for: now)
        func start(_ date: Date, _ step: Int) -> Date {
            Date(timeIntervalSince1970: ((date.timeIntervalSince1970 + Double(offset)) / Double(step)).rounded(.down) * Double(step)
                 - Double(offset))
        }
        func chart(since: Date, until: Date, step: Int, label: (Date) -> String, title: String, axis: String) throws -> SVGChart {
            let stats = try services.log.stats(accountID: account.id, since: since, until: until, interval: step, groupBy: .none,
                                                 offset: offset)
            let byPeriod = Dictionary(stats.map { ($0.period, $0.counts) }, uniquingKeysWith: { first, _ in first })
            let periods = stride(from: since.timeIntervalSince1970, to: until.timeIntervalSince1970, by: Double(step))
                .map { start(Date(timeIntervalSince1970: $0), step) }
            return SVGChart(title: t[title] ?? title, xLabel: t[axis] ?? axis, yLabel: t["chart_events"] ?? "",
                            labels: periods.map(label),
                            series: kinds.enumerated().map { index, kind in
                                SVGChart.Series(name: t["event_\(kind.rawValue)"] ?? kind.rawValue, colour: SVGChart.palette[index],
                                                values: periods.map { byPeriod[$0]?[kind.rawValue] ?? 0 })
                            })
        }
        let hourStart = start(now, 3600)
        let hourly = try chart(since: hourStart.addingTimeInterval(-23 * 3600), until: hourStart.addingTimeInterval(3600), step: 3600,
                               label: { ConsoleFormat.hour($0, viewer.timeZone) }, title: "chart_hourly", axis: "chart_hour")
        let dayStart = start(now, 86400)
        let daily = try chart(since: dayStart.addingTimeInterval(-13 * 86400), until: dayStart.addingTimeInterval(86400), step: 86400,
                              label: { ConsoleFormat.day($0, viewer.timeZone) }, title: "chart_daily", axis: "chart_day")
        // The last hour: what share of finished attempts were deliveries.
        let lastHour = try services.log.stats(accountID: account.id, since: now.addingTimeInterval(-3600), until: now,
                                                interval: 7200, groupBy: .none).reduce(into: [String: Int]()) { total, row in
            total.merge(row.counts, uniquingKeysWith: +)
        }
        let attempts = (lastHour["delivered"] ?? 0) + (lastHour["bounced"] ?? 0) + (lastHour["deferred"] ?? 0)
        let rate = attempts == 0 ? "–" : SVGChart.round(Double(lastHour["delivered"] ?? 0) * 100 / Double(attempts)) + "%"
        let sites = try services.index.sites(accountID: account.id)
        var failures = DeliveryLogFilter(accountID: account.id, types: [.bounced, .deferred, .expired], limit: 10)
        failures.since = now.addingTimeInterval(-7 * 86400)
        let latest = try services.log.events(failures)
        let context: [String: Any] = [
            "queued": ConsoleFormat.number(sites.reduce(0) { $0 + $1.queued + $1.held }),
            "deferred": ConsoleFormat.number(sites.reduce(0) { $0 + $1.deferred }),
            "delivery_rate": rate,
            "hourly_svg": hourly.svg, "hourly_table": hourly.table(period: t["period"] ?? ""),
            "daily_svg": daily.svg, "daily_table": daily.table(period: t["period"] ?? ""),
            "failures": latest.map { eventRow($0, viewer) }, "has_failures": !latest.isEmpty,
        ]
        return render("overview", context, viewer: viewer, title: "nav_overview", current: "nav_overview", path: request.uri.path)
    }

    /// One event as a table row; absent facts are left out, so that a template's `{{#mx}}` section is skipped.
    func eventRow(_ event: DeliveryEvent, _ viewer: ConsoleViewer) -> [String: Any] {
        let t = views.catalog(viewer.language)
        var row: [String: Any] = ["at": ConsoleFormat.time(event.at, viewer.timeZone), "type": t["event_\(event.type.rawValue)"] ?? event.type.rawValue,
                                  "type_code": event.type.rawValue, "recipient": event.recipient, "message": event.messageID.rawValue]
        let optional: [(String, String?)] = [("category", event.category), ("reply", event.replyText), ("mx", event.mxHost),
                                             ("ip", event.remoteIP), ("tls", event.tlsVersion), ("site", event.site),
                                             ("code", [event.replyCode.map(String.init), event.enhancedCode].compactMap { $0 }
                                                 .joined(separator: " "))]
        for (key, value) in optional {
            if let value, !value.isEmpty { row[key] = value }
        }
        return row
    }

    // MARK: Helpers

    /// A redirect target: only a path under /console/ (no open redirect).
    static func localPath(_ text: String?) -> String {
        guard let text, text.hasPrefix("/console/"), !text.contains("//"), !text.contains("\\"),
              !text.contains(where: { $0.isNewline || $0 == "\r" }) else { return "/console/" }
        return text
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~/"))) ?? "/console/"
    }
}

/// A page refused for a reason the catalogue explains.
struct ConsoleRefusal: Error {
    var status: HTTPResponse.Status
    var key: String
}

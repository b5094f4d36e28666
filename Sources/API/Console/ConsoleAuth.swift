import Foundation
import Hummingbird
import NIOCore
import Relay
import Store

/// How the console keeps people logged in.
public struct ConsoleOptions: Sendable {
    /// A session unused this long ends.
    public var idleTimeout: TimeInterval
    /// A session ends this long after login, used or not.
    public var absoluteTimeout: TimeInterval
    /// Cookies carry `Secure`: on by itself over TLS; set it behind a TLS-terminating proxy.
    public var secureCookie: Bool
    /// Failed logins allowed per address and per user within `loginWindow`.
    public var maximumLoginFailures: Int
    public var loginWindow: TimeAmount
    /// What the operator's health page shows (listeners, spool, disk, version, uptime); nil: nothing.
    public var health: (@Sendable () -> [(String, String)])?
    /// The delivery engine, for the queue page's connections, limits and postponements; nil: delivery is off.
    public var courier: SMTPCourier?

    public init(idleTimeout: TimeInterval = 1800, absoluteTimeout: TimeInterval = 12 * 3600, secureCookie: Bool = false,
                maximumLoginFailures: Int = 5, loginWindow: TimeAmount = .seconds(900), health: (@Sendable () -> [(String, String)])? = nil,
                courier: SMTPCourier? = nil) {
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
        self.secureCookie = secureCookie
        self.maximumLoginFailures = maximumLoginFailures
        self.loginWindow = loginWindow
        self.health = health
        self.courier = courier
    }
}

/// Who is looking at a page: the session, and the account the pages are about
/// (an operator chooses one; everyone else has their own).
struct ConsoleViewer: Sendable {
    var session: ConsoleSession
    var account: Account?
    /// Every account, for an operator's chooser; empty for others.
    var accounts: [Account]
    var language: ConsoleLanguage
    var timeZone: TimeZone

    var user: ConsoleUser { session.user }
    var isOperator: Bool { user.role == .operator }
    /// Account admins and operators change things; members read and send tests.
    var canChange: Bool { user.role != .member }
}

/// Cookies, sessions, CSRF tokens and the login throttle.
struct ConsoleAuth: Sendable {
    static let sessionCookie = "hk_session"
    static let loginCookie = "hk_login"
    static let languageCookie = "hk_lang"
    static let zoneCookie = "hk_tz"
    static let accountCookie = "hk_account"

    let store: any AccountStore & ConsoleUserStore
    let options: ConsoleOptions
    let byAddress: AuthenticationThrottle
    let byUser: AuthenticationThrottle

    init(store: any AccountStore & ConsoleUserStore, options: ConsoleOptions) {
        self.store = store
        self.options = options
        byAddress = AuthenticationThrottle(maximumFailures: options.maximumLoginFailures * 4, window: options.loginWindow)
        byUser = AuthenticationThrottle(maximumFailures: options.maximumLoginFailures, window: options.loginWindow)
    }

    /// `Set-Cookie` for a console cookie: HttpOnly, SameSite=Strict, only under /console.
    func cookie(_ name: String, _ value: String, maxAge: Int? = nil) -> String {
        var text = "\(name)=\(value); Path=/console; HttpOnly; SameSite=Strict"
        if let maxAge { text += "; Max-Age=\(maxAge)" }
        if options.secureCookie { text += "; Secure" }
        return text
    }

    func expired(_ name: String) -> String { cookie(name, "", maxAge: 0) }

    static func cookieValue(_ request: Request, _ name: String) -> String? {
        request.cookies[name]?.value
    }

    /// The language: the remembered choice, else `Accept-Language`, else Japanese.
    static func language(_ request: Request) -> ConsoleLanguage {
        cookieValue(request, languageCookie).flatMap(ConsoleLanguage.init(rawValue:))
            ?? ConsoleLanguage.negotiate(request.headers[.acceptLanguage]) ?? .ja
    }

    static func timeZone(_ request: Request, language: ConsoleLanguage) -> TimeZone {
        cookieValue(request, zoneCookie).flatMap { $0.removingPercentEncoding }.flatMap(TimeZone.init(identifier:))
            ?? language.defaultTimeZone
    }

    /// The logged-in viewer of a request, or nil (no, expired or ended session).
    func viewer(_ request: Request) throws -> ConsoleViewer? {
        guard let token = ConsoleAuth.cookieValue(request, ConsoleAuth.sessionCookie),
              let session = try store.consoleSession(token: token, idle: options.idleTimeout, absolute: options.absoluteTimeout)
        else { return nil }
        let language = ConsoleAuth.language(request)
        var viewer = ConsoleViewer(session: session, account: nil, accounts: [], language: language,
                                   timeZone: ConsoleAuth.timeZone(request, language: language))
        if session.user.role == .operator {
            viewer.accounts = try store.accounts()
            let chosen = ConsoleAuth.cookieValue(request, ConsoleAuth.accountCookie)
            viewer.account = viewer.accounts.first { $0.name == chosen } ?? viewer.accounts.first
        } else if let id = session.user.accountID {
            viewer.account = try store.account(id: id)
        }
        return viewer
    }

    /// The synchroniser token of a form matches the session's.
    static func checkCSRF(_ form: FormFields, _ viewer: ConsoleViewer) -> Bool {
        guard let presented = form["csrf"] else { return false }
        return constantTimeEqual(Array(presented.utf8), Array(viewer.session.csrfToken.utf8))
    }
}

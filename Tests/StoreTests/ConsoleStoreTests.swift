import Foundation
import Testing
@testable import Store

struct ConsoleStoreTests {
    @Test(arguments: StoreEngine.available)
    func usersNeedTheRightAccountAndLogInWithTheirPassword(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let account = try store.createAccount(name: "acme", domains: ["acme.example"]).account
        #expect(throws: ConsoleUserError.accountRequired) { try store.createConsoleUser(email: "a@acme.example", role: .admin, accountID: nil) }
        #expect(throws: ConsoleUserError.operatorHasNoAccount) {
            try store.createConsoleUser(email: "o@acme.example", role: .operator, accountID: account.id)
        }
        #expect(throws: ConsoleUserError.invalidEmail("no-at-sign")) { try store.createConsoleUser(email: "no-at-sign", role: .operator, accountID: nil) }
        let created = try store.createConsoleUser(email: "Admin@Acme.Example", role: .admin, accountID: account.id)
        #expect(created.user.email == "admin@acme.example")
        #expect(throws: ConsoleUserError.duplicateEmail("admin@acme.example")) {
            try store.createConsoleUser(email: "admin@acme.example", role: .member, accountID: account.id)
        }
        #expect(try store.authenticateConsoleUser(email: "ADMIN@acme.example", password: created.password)?.id == created.user.id)
        #expect(try store.authenticateConsoleUser(email: "admin@acme.example", password: created.password + "x") == nil)
        #expect(try store.authenticateConsoleUser(email: "nobody@acme.example", password: created.password) == nil)
        // A disabled account's users cannot log in, and their sessions stop.
        let token = try store.openConsoleSession(userID: created.user.id)
        try store.setDisabled(true, name: "acme")
        #expect(try store.authenticateConsoleUser(email: "admin@acme.example", password: created.password) == nil)
        #expect(try store.consoleSession(token: token, idle: 3600, absolute: 86400) == nil)
    }

    @Test(arguments: StoreEngine.available)
    func sessionsEndWhenIdleOrOldOrChanged(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let user = try store.createConsoleUser(email: "ops@example.jp", role: .operator, accountID: nil).user
        let start = Date()
        let token = try store.openConsoleSession(userID: user.id, now: start)
        let session = try #require(try store.consoleSession(token: token, idle: 600, absolute: 3600, now: start.addingTimeInterval(300)))
        #expect(session.user == user && session.csrfToken.count == 32)
        // Used within the idle time again and again: still ends at the absolute limit.
        var now = start
        for _ in 0..<5 {
            now = now.addingTimeInterval(500)
            #expect(try store.consoleSession(token: token, idle: 600, absolute: 3600, now: now) != nil)
        }
        #expect(try store.consoleSession(token: token, idle: 600, absolute: 3600, now: start.addingTimeInterval(3601)) == nil)
        // Idle too long.
        let idle = try store.openConsoleSession(userID: user.id, now: start)
        #expect(try store.consoleSession(token: idle, idle: 600, absolute: 3600, now: start.addingTimeInterval(601)) == nil)
        #expect(try store.consoleSession(token: idle, idle: 600, absolute: 3600, now: start.addingTimeInterval(10)) == nil, "gone for good")
        // A new password logs out everywhere; so does "log out everywhere".
        let a = try store.openConsoleSession(userID: user.id)
        let b = try store.openConsoleSession(userID: user.id)
        #expect(throws: ConsoleUserError.weakPassword) { try store.setConsolePassword(userID: user.id, password: "short") }
        try store.setConsolePassword(userID: user.id, password: "a long enough password")
        #expect(try store.consoleSession(token: a, idle: 600, absolute: 3600) == nil)
        #expect(try store.consoleSession(token: b, idle: 600, absolute: 3600) == nil)
        #expect(try store.authenticateConsoleUser(email: "ops@example.jp", password: "a long enough password") != nil)
        let c = try store.openConsoleSession(userID: user.id)
        #expect(try store.closeConsoleSessions(userID: user.id) == 1)
        #expect(try store.consoleSession(token: c, idle: 600, absolute: 3600) == nil)
        // Garbage cookies are no session and cost no lookup of note.
        #expect(try store.consoleSession(token: "", idle: 600, absolute: 3600) == nil)
        #expect(try store.consoleSession(token: String(repeating: "x", count: 5000), idle: 600, absolute: 3600) == nil)
    }

    @Test func operatorScopeIsAboveAdmin() {
        #expect(APIKeyScope.operator > .admin && APIKeyScope.admin > .read && ConsoleRole.member.scope == .read)
    }
}

struct TOTPTests {
    @Test func rfc6238Vectors() {
        // RFC 6238 Appendix B, SHA-1, the 20-byte ASCII secret "12345678901234567890", 8 digits.
        let secret = Array("12345678901234567890".utf8)
        for (time, expected) in [(59.0, "94287082"), (1_111_111_109, "07081804"), (1_111_111_111, "14050471"),
                                 (1_234_567_890, "89005924"), (2_000_000_000, "69279037"), (20_000_000_000, "65353130")] {
            #expect(TOTP.code(secret: secret, counter: TOTP.counter(at: Date(timeIntervalSince1970: time)), digits: 8) == expected)
        }
        #expect(TOTP.base32(Array("foobar".utf8)) == "MZXW6YTBOI")
        #expect(TOTP.base32Decode("MZXW6YTBOI") == Array("foobar".utf8))
        #expect(TOTP.base32Decode("not base32!") == nil)
    }

    @Test(arguments: StoreEngine.available)
    func enrolmentLoginAndReplay(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let user = try store.createConsoleUser(email: "ops@example.jp", role: .operator, accountID: nil).user
        let now = Date()
        #expect(try store.checkTOTP(userID: user.id, code: nil, now: now), "no second factor: the password is enough")
        let enrollment = try store.beginTOTP(userID: user.id)
        #expect(enrollment.uri.hasPrefix("otpauth://totp/Hikyaku%3Aops%40example%2Ejp?secret=\(enrollment.secret)") ||
                enrollment.uri.contains("secret=\(enrollment.secret)"))
        let secret = try #require(TOTP.base32Decode(enrollment.secret))
        #expect(try store.checkTOTP(userID: user.id, code: nil, now: now), "pending until confirmed")
        #expect(try store.confirmTOTP(userID: user.id, code: "000000x", now: now) == false)
        let first = TOTP.code(secret: secret, counter: TOTP.counter(at: now))
        #expect(try store.confirmTOTP(userID: user.id, code: first, now: now))
        #expect(try store.hasTOTP(userID: user.id))
        #expect(try !store.checkTOTP(userID: user.id, code: nil, now: now))
        #expect(try !store.checkTOTP(userID: user.id, code: first, now: now), "the confirming code cannot log in again")
        let later = now.addingTimeInterval(30)
        let next = TOTP.code(secret: secret, counter: TOTP.counter(at: later))
        #expect(try store.checkTOTP(userID: user.id, code: next, now: later))
        #expect(try !store.checkTOTP(userID: user.id, code: next, now: later), "each code once")
        let muchLater = now.addingTimeInterval(600)
        #expect(try !store.checkTOTP(userID: user.id, code: TOTP.code(secret: secret, counter: TOTP.counter(at: now) + 5), now: muchLater))
        try store.disableTOTP(userID: user.id)
        #expect(try store.checkTOTP(userID: user.id, code: nil, now: muchLater))
    }
}

extension TOTPTests {
    @Test(arguments: StoreEngine.available)
    func aFactorOnIsNeverReplacedByAnotherEnrolment(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let user = try store.createConsoleUser(email: "a@example.jp", role: .operator, accountID: nil).user
        let now = Date()
        let first = try #require(TOTP.base32Decode(try store.beginTOTP(userID: user.id).secret))
        #expect(try store.confirmTOTP(userID: user.id, code: TOTP.code(secret: first, counter: TOTP.counter(at: now)), now: now))
        let second = try #require(TOTP.base32Decode(try store.beginTOTP(userID: user.id).secret))
        #expect(try !store.confirmTOTP(userID: user.id, code: TOTP.code(secret: second, counter: TOTP.counter(at: now)), now: now))
        let later = now.addingTimeInterval(30)
        #expect(try store.checkTOTP(userID: user.id, code: TOTP.code(secret: first, counter: TOTP.counter(at: later)), now: later))
    }
}

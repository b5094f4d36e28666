import Foundation
import Store
import Testing
@testable import Relay

/// SMTP credentials remembered for an outage of the shared store.
struct RecentCredentialsTests {
    let account = AuthenticatedAccount(id: 7, name: "acme", domains: ["acme.example"])

    @Test func aCredentialThatVerifiedOpensWithinTheGraceOnly() {
        let recent = RecentCredentials(grace: 3600)
        let start = Date()
        recent.remember(username: "u1", password: "right", account: account, now: start)
        #expect(recent.recall(username: "u1", password: "right", now: start + 60)?.id == 7)
        #expect(recent.recall(username: "u1", password: "wrong", now: start + 60) == nil)
        #expect(recent.recall(username: "u2", password: "right", now: start + 60) == nil)
        #expect(recent.recall(username: "u1", password: "right", now: start + 3601) == nil, "past the grace")
        // A refusal by the store forgets the credential at once (a changed password, a disabled account).
        recent.forget(username: "u1")
        #expect(recent.recall(username: "u1", password: "right", now: start + 60) == nil)
    }

    @Test func noGraceRemembersNothing() {
        let recent = RecentCredentials(grace: 0)
        recent.remember(username: "u1", password: "right", account: account)
        #expect(recent.recall(username: "u1", password: "right") == nil)
    }
}

import ArgumentParser
import Foundation
import Store

/// `hikyaku user …`: people who log in to the web console.
struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage console users (first passwords printed once, stored as scrypt hashes).",
        subcommands: [Create.self, List.self, ResetPassword.self, Disable.self, Enable.self, Delete.self])

    static func user(_ store: any ConsoleUserStore, _ email: String) throws -> ConsoleUser {
        guard let user = try store.consoleUsers().first(where: { $0.email == email.lowercased() }) else {
            throw ValidationError("no user \(email)")
        }
        return user
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user; prints the first password once.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The login email address.") var email: String
        @Option(name: .long, help: "operator (every account and the server), admin (one account) or member (read and send tests).")
        var role: String
        @Option(name: .long, help: "The account of an admin or member.") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard let role = ConsoleRole(rawValue: role) else { throw ValidationError("role must be operator, admin or member") }
            let store = try AccountCommand.store(options)
            var accountID: Int64?
            if let account {
                guard let found = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
                accountID = found.id
            }
            let created: NewConsoleUser
            do { created = try store.createConsoleUser(email: email, role: role, accountID: accountID) } catch let error as ConsoleUserError {
                throw ValidationError(error.description)
            }
            if json { return try printJSON(created) }
            print("user:     \(created.user.email) (\(created.user.role.rawValue))")
            print("password: \(created.password)")
            print("Shown only now. Log in at /console/ on the API listener and change it under Settings.")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var options: CommonOptions
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let store = try AccountCommand.store(options)
            let users = try store.consoleUsers()
            if json { return try printJSON(users) }
            let names = Dictionary(uniqueKeysWithValues: try store.accounts().map { ($0.id, $0.name) })
            for user in users {
                print("\(user.email)\t\(user.role.rawValue)\t\(user.accountID.flatMap { names[$0] } ?? "-")\t\(user.disabled ? "disabled" : "active")")
            }
        }
    }

    struct ResetPassword: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reset-password",
                                                        abstract: "Give a user a new generated password (printed once); ends their sessions.")
        @OptionGroup var options: CommonOptions
        @Argument var email: String

        func run() throws {
            let store = try AccountCommand.store(options)
            let user = try UserCommand.user(store, email)
            let password = CredentialGenerator.password()
            try store.setConsolePassword(userID: user.id, password: password)
            print("password: \(password)")
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user and end their sessions.")
        @OptionGroup var options: CommonOptions
        @Argument var email: String
        func run() throws {
            let store = try AccountCommand.store(options)
            try store.setConsoleUserDisabled(true, userID: try UserCommand.user(store, email).id)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var options: CommonOptions
        @Argument var email: String
        func run() throws {
            let store = try AccountCommand.store(options)
            try store.setConsoleUserDisabled(false, userID: try UserCommand.user(store, email).id)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user.")
        @OptionGroup var options: CommonOptions
        @Argument var email: String
        func run() throws {
            let store = try AccountCommand.store(options)
            try store.deleteConsoleUser(id: try UserCommand.user(store, email).id)
        }
    }
}

/// `hikyaku smtp-credential …`: SMTP AUTH usernames of an account, for rotation.
struct CredentialCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smtp-credential", abstract: "Rotate SMTP credentials: add a second one, move senders over, revoke the first.",
        subcommands: [Create.self, List.self, Revoke.self])

    static func account(_ store: any AccountStore, _ name: String) throws -> Account {
        guard let account = try store.account(named: name) else { throw ValidationError("no account named \(name)") }
        return account
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a username and password to an account; printed once.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Flag(name: .long, help: "Machine-readable output.") var json = false
        func run() throws {
            let store = try AccountCommand.store(options)
            let created: NewSMTPCredential
            do { created = try store.createSMTPCredential(accountID: try CredentialCommand.account(store, account).id) }
            catch let error as SMTPCredentialError { throw ValidationError(error.description) }
            if json { return try printJSON(created) }
            print("username: \(created.credential.username)")
            print("password: \(created.password)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an account's SMTP usernames.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Flag(name: .long, help: "Machine-readable output.") var json = false
        func run() throws {
            let store = try AccountCommand.store(options)
            let credentials = try store.smtpCredentials(accountID: try CredentialCommand.account(store, account).id)
            if json { return try printJSON(credentials) }
            for credential in credentials {
                print("\(credential.username)\t\(credential.primary ? "first" : "added")\t\(credential.revokedAt == nil ? "active" : "revoked")")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke one username (not the last live one).")
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Argument var username: String
        func run() throws {
            let store = try AccountCommand.store(options)
            do {
                guard try store.revokeSMTPCredential(username: username, accountID: try CredentialCommand.account(store, account).id) else {
                    throw ValidationError("no username \(username) in \(account)")
                }
            } catch let error as SMTPCredentialError { throw ValidationError(error.description) }
        }
    }
}

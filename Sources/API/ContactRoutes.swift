import Foundation
import Hummingbird
import Logging
import NIOCore
import Store

/// `/v1/contacts`, `/v1/lists`, `/v1/segments`: an account's customer data,
/// its static lists and its segments (docs/campaigns.md).
struct ContactRoutes: Sendable {
    let services: APIServices

    struct FieldInput: Decodable, Sendable {
        var name: String
        var type: String
    }

    struct ContactInput: Decodable, Sendable {
        var email: String?
        var fields: [String: JSONValue]?
    }

    struct NameInput: Decodable, Sendable {
        var name: String
    }

    struct MembersInput: Decodable, Sendable {
        var emails: [String]
    }

    struct SegmentInput: Decodable, Sendable {
        var name: String?
        var segment: JSONValue?
        var segmentId: Int64?
    }

    struct TimeZoneInput: Decodable, Sendable {
        var timeZone: String
    }

    func register(on routes: Routes) {
        routes.get("/v1/contacts/fields") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let fields = try store { try services.store.contactFields(accountID: call.account.id) }
            return APIJSON.response(object: ["fields": fields.map { ["name": $0.name, "type": $0.kind.rawValue] }])
        }
        routes.post("/v1/contacts/fields") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(FieldInput.self, from: call.body)
            guard let kind = ContactField.Kind(rawValue: input.type) else {
                throw APIError.badRequest("type must be text, number, date or boolean", field: "type")
            }
            try store { try services.store.addContactField(ContactField(name: input.name, kind: kind), accountID: call.account.id) }
            return APIJSON.response(object: ["name": input.name, "type": kind.rawValue], status: .created)
        }
        routes.delete("/v1/contacts/fields/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try context.parameters.require("name").removingPercentEncoding ?? ""
            try store { try services.store.deleteContactField(named: name, accountID: call.account.id) }
            return Response(status: .noContent)
        }
        routes.get("/v1/contacts") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let after = request.query("after").flatMap { Int64($0) } ?? 0
            let limit = min(1000, max(1, request.query("limit").flatMap { Int($0) } ?? 100))
            let page = try store { try services.store.contacts(accountID: call.account.id, after: after, limit: limit) }
            let total = try store { try services.store.contactCount(accountID: call.account.id) }
            var object: [String: Any] = ["contacts": page.map(ContactRoutes.object), "total": total]
            if page.count == limit, let last = page.last { object["next"] = String(last.id) }
            return APIJSON.response(object: object)
        }
        routes.post("/v1/contacts") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(ContactInput.self, from: call.body)
            guard let email = input.email else { throw APIError.badRequest("email is required", field: "email") }
            return try upsert(email, input.fields ?? [:], account: call.account.id)
        }
        routes.get("/v1/contacts/export") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let account = call.account.id
            let fields = try store { try services.store.contactFields(accountID: account) }
            let store = services.store
            // Written page by page as it is read: an export of millions never sits in memory.
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"contacts.csv\""],
                            body: ContactCSV.exportBody(store: store, accountID: account, fields: fields))
        }
        routes.post("/v1/contacts/imports") { request, context in try await startImport(request, context) }
        routes.get("/v1/contacts/imports") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let imports = try store { try services.store.contactImports(accountID: call.account.id) }
            return APIJSON.response(object: ["imports": imports.map(ContactRoutes.object)])
        }
        routes.get("/v1/contacts/imports/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            guard let id = ContactRoutes.id(try context.parameters.require("id")),
                  let found = try store({ try services.store.contactImport(id: id, accountID: call.account.id) }) else {
                throw APIError.notFound("import")
            }
            return APIJSON.response(object: ContactRoutes.object(found))
        }
        routes.get("/v1/contacts/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let email = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
            guard let contact = try store({ try services.store.contact(address: email, accountID: call.account.id) }) else {
                throw APIError.notFound("contact \(email)")
            }
            return APIJSON.response(object: ContactRoutes.object(contact))
        }
        routes.put("/v1/contacts/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(ContactInput.self, from: call.body)
            return try upsert(SuppressionRoutes.pathAddress(try context.parameters.require("email")), input.fields ?? [:],
                              account: call.account.id)
        }
        routes.delete("/v1/contacts/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let email = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
            guard try store({ try services.store.deleteContact(address: email, accountID: call.account.id) }) else {
                throw APIError.notFound("contact \(email)")
            }
            return Response(status: .noContent)
        }
        routes.put("/v1/account/time-zone") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TimeZoneInput.self, from: call.body)
            guard let zone = TimeZone(identifier: input.timeZone) else {
                throw APIError.badRequest("time_zone must be an IANA zone such as Asia/Tokyo", field: "time_zone")
            }
            try store { try services.store.setTimeZone(zone, accountID: call.account.id) }
            return APIJSON.response(object: ["time_zone": zone.identifier])
        }
        registerLists(on: routes)
        registerSegments(on: routes)
    }

    func registerLists(on routes: Routes) {
        routes.get("/v1/lists") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let lists = try store { try services.store.contactLists(accountID: call.account.id) }
            return APIJSON.response(object: ["lists": lists.map { ["id": $0.id, "name": $0.name, "members": $0.members] as [String: Any] }])
        }
        routes.post("/v1/lists") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(NameInput.self, from: call.body)
            try ContactRoutes.checkName(input.name)
            let list = try store { try services.store.createContactList(name: input.name, accountID: call.account.id) }
            return APIJSON.response(object: ["id": list.id, "name": list.name, "members": 0], status: .created)
        }
        routes.delete("/v1/lists/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            guard let id = ContactRoutes.id(try context.parameters.require("id")) else { throw APIError.notFound("list") }
            try store { try services.store.deleteContactList(id: id, accountID: call.account.id) }
            return Response(status: .noContent)
        }
        for (path, remove) in [("/v1/lists/:id/members", false), ("/v1/lists/:id/members/remove", true)] {
            routes.post(path) { request, context in
                let call = try await services.gate.open(request, context: context, scope: .admin)
                guard let id = ContactRoutes.id(try context.parameters.require("id")) else { throw APIError.notFound("list") }
                let input = try APIJSON.decode(MembersInput.self, from: call.body)
                guard input.emails.count <= 10_000 else { throw APIError.badRequest("at most 10000 addresses per request", field: "emails") }
                let found = try store {
                    try services.store.changeListMembers(listID: id, addresses: input.emails.map { $0.lowercased() }, remove: remove,
                                                         accountID: call.account.id)
                }
                return APIJSON.response(object: [remove ? "removed" : "added": found, "not_contacts": input.emails.count - found])
            }
        }
    }

    func registerSegments(on routes: Routes) {
        routes.get("/v1/segments") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let segments = try store { try services.store.segments(accountID: call.account.id) }
            return APIJSON.response(object: ["segments": segments.map(ContactRoutes.object)])
        }
        routes.post("/v1/segments") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            return try saveSegment(call, id: nil)
        }
        routes.put("/v1/segments/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            guard let id = ContactRoutes.id(try context.parameters.require("id")) else { throw APIError.notFound("segment") }
            return try saveSegment(call, id: id)
        }
        routes.get("/v1/segments/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            guard let id = ContactRoutes.id(try context.parameters.require("id")),
                  let segment = try store({ try services.store.segment(id: id, accountID: call.account.id) }) else {
                throw APIError.notFound("segment")
            }
            return APIJSON.response(object: ContactRoutes.object(segment))
        }
        routes.delete("/v1/segments/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            guard let id = ContactRoutes.id(try context.parameters.require("id")) else { throw APIError.notFound("segment") }
            try store { try services.store.deleteSegment(id: id, accountID: call.account.id) }
            return Response(status: .noContent)
        }
        // The live preview: how many contacts an expression (or a saved segment) holds now, how many
        // marketing may reach, and the first few.
        routes.post("/v1/segments/count") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let input = try APIJSON.decode(SegmentInput.self, from: call.body)
            var json = input.segment
            if let id = input.segmentId {
                guard let saved = try store({ try services.store.segment(id: id, accountID: call.account.id) }) else {
                    throw APIError.notFound("segment \(id)")
                }
                json = saved.expression
            }
            guard let json else { throw APIError.badRequest("segment or segment_id is required", field: "segment") }
            let query = try query(json, account: call.account.id)
            let (count, sendable) = try store { try services.store.segmentCounts(query, accountID: call.account.id) }
            let sample = try store { try services.store.segmentContacts(query, accountID: call.account.id, after: 0, limit: 10) }
            return APIJSON.response(object: ["count": count, "sendable": sendable, "sample": sample.map(\.address)])
        }
    }

    func saveSegment(_ call: APICall, id: Int64?) throws -> Response {
        let input = try APIJSON.decode(SegmentInput.self, from: call.body)
        guard let name = input.name else { throw APIError.badRequest("name is required", field: "name") }
        try ContactRoutes.checkName(name)
        guard let json = input.segment else { throw APIError.badRequest("segment is required", field: "segment") }
        _ = try query(json, account: call.account.id)
        let segment = try store { try services.store.saveSegment(name: name, expression: json, accountID: call.account.id, id: id) }
        return APIJSON.response(object: ContactRoutes.object(segment), status: id == nil ? .created : .ok)
    }

    /// The expression checked against the account's fields and compiled, or a 400 naming the part at fault.
    func query(_ json: JSONValue, account: Int64) throws(APIError) -> SegmentQuery {
        do {
            return try services.store.segmentQuery(try SegmentExpression(json: json), accountID: account, now: Date())
        } catch let error as SegmentError {
            throw APIError.badRequest(error.description, field: error.path)
        } catch {
            throw APIError.storeFailure(error)
        }
    }

    func upsert(_ email: String, _ input: [String: JSONValue], account: Int64) throws -> Response {
        let address = try NativeAPI.address(AddressInput(text: email), field: "email").address
        let fields = try store { try services.store.contactFields(accountID: account) }
        let kinds = Dictionary(fields.map { ($0.name, $0.kind) }) { first, _ in first }
        var values: [String: ContactValue] = [:]
        for (name, json) in input {
            guard let kind = kinds[name] else { throw APIError.badRequest("no contact field named \(name)", field: "fields.\(name)") }
            let value: ContactValue? = switch (kind, json) {
            case (.number, .number(let number)) where number.isFinite: .number(number)
            case (.boolean, .bool(let flag)): .boolean(flag)
            case (_, .string(let text)): ContactValue.parse(text, as: kind)
            default: nil
            }
            guard let value else { throw APIError.badRequest("\(name) must be a \(kind.rawValue)", field: "fields.\(name)") }
            values[name] = value
        }
        let contact = try store { try services.store.upsertContact(address: address, fields: values, accountID: account) }
        return APIJSON.response(object: ContactRoutes.object(contact))
    }

    /// `POST /v1/contacts/imports`: the CSV body is written to a file as it arrives (never held in
    /// memory), then read and applied in the background; 202 with the import to poll for progress.
    func startImport(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try services.gate.authenticate(request, context: context, scope: .admin)
        guard let charset = ContactCSV.Charset(name: request.query("charset") ?? "auto") else {
            throw APIError.badRequest("charset must be auto, utf-8 or shift_jis", field: "charset")
        }
        let list = try request.query("list").map { text throws(APIError) -> Int64 in
            guard let id = ContactRoutes.id(text) else { throw APIError.badRequest("list must be a list id", field: "list") }
            return id
        }
        // One import per account and a few in all at a time, counted and begun at once before a byte is read;
        // uploads go to the spool's disk, so room is checked first.
        let account = caller.account.id
        let id = try ContactRoutes.beginImport(services: services, account: account, list: list)
        let directory = services.layout.directory + "/imports"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + UUID().uuidString + ".csv"
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            try? services.store.failContactImport(importID: id, reason: "the upload could not be stored", line: 0)
            throw APIError(.serviceUnavailable, "import_unavailable", "the upload could not be stored", ses: "InternalFailure")
        }
        var size = 0
        do {
            defer { try? handle.close() }
            for try await buffer in request.body {
                let before = size
                size += buffer.readableBytes
                guard size <= ContactCSV.maximumBytes else {
                    throw APIError(.contentTooLarge, "payload_too_large", "an import is at most \(ContactCSV.maximumBytes) bytes",
                                   ses: "MessageRejected")
                }
                if before >> 24 != size >> 24, ContactRoutes.freeBytes(directory: directory) < ContactRoutes.minimumFreeForImport / 2 {
                    throw APIError(HTTPResponse.Status(code: 507), "insufficient_storage", "the disk filled up while the import was uploaded",
                                   ses: "InternalFailure", retryAfter: 60)
                }
                try handle.write(contentsOf: buffer.readableBytesView)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            try? services.store.failContactImport(importID: id, reason: "the upload did not arrive whole", line: 0)
            throw error
        }
        ContactRoutes.runImportJob(services: services, id: id, account: account, path: path, charset: charset, logger: context.logger)
        let started = try self.store({ try services.store.contactImport(id: id, accountID: account) })
        return APIJSON.response(object: started.map(ContactRoutes.object) ?? ["id": id], status: .accepted)
    }

    /// Runs a store call, turning its errors into API errors.
    func store<T>(_ body: () throws -> T) throws(APIError) -> T {
        do { return try body() } catch let error as ContactError {
            switch error {
            case .notFound(let what): throw APIError.notFound(what)
            case .unknownField(let name): throw APIError.notFound("contact field \(name)")
            case .fieldExists: throw APIError(.conflict, "conflict", error.description, ses: "AlreadyExistsException")
            default: throw APIError.badRequest(error.description)
            }
        } catch let error as CampaignError {
            switch error {
            case .notFound: throw APIError.notFound(error.description.replacingOccurrences(of: "no ", with: ""))
            case .invalidState: throw APIError(.conflict, "invalid_state", error.description, ses: "ConflictException")
            }
        } catch {
            throw APIError.storeFailure(error)
        }
    }

    /// Begins an import: refused while one of the account's runs, when too many run, or when the disk is short.
    static func beginImport(services: APIServices, account: Int64, list: Int64?) throws(APIError) -> Int64 {
        guard ContactRoutes.freeBytes(directory: services.layout.directory) >= ContactRoutes.minimumFreeForImport else {
            throw APIError(HTTPResponse.Status(code: 507), "insufficient_storage", "not enough free disk space for an import",
                           ses: "InternalFailure", retryAfter: 60)
        }
        do {
            return try services.store.beginContactImport(accountID: account, listID: list, maximumRunning: maximumRunningImports)
        } catch ContactError.importRunning(let mine) {
            throw APIError(.tooManyRequests, "import_running", ContactError.importRunning(thisAccount: mine).description,
                           ses: "TooManyRequestsException", retryAfter: 10)
        } catch ContactError.notFound(let what) {
            throw APIError.notFound(what)
        } catch {
            throw APIError.storeFailure(error)
        }
    }

    /// Reads the uploaded file (at `path`, removed when done) into the import `id`, on a dispatch thread:
    /// minutes of blocking reads and writes stay off the concurrency pool's few threads.
    static func runImportJob(services: APIServices, id: Int64, account: Int64, path: String, charset: ContactCSV.Charset, logger: Logger) {
        let store = services.store
        DispatchQueue.global(qos: .utility).async {
            let result = ContactCSV.run(importID: id, path: path, charset: charset, accountID: account, store: store)
            try? FileManager.default.removeItem(atPath: path)
            logger.info("contact import ended", metadata: ["import": "\(id)", "state": "\(result?.state.rawValue ?? "?")",
                                                            "applied": "\(result?.applied ?? 0)", "invalid": "\(result?.rowsInvalid ?? 0)"])
        }
    }

    static let maximumRunningImports = 2
    /// Free space an import needs to start (the file, its staging, the write-ahead log), above what mail needs.
    static let minimumFreeForImport: Int64 = 1 << 30

    static func freeBytes(directory: String) -> Int64 {
        ((try? FileManager.default.attributesOfFileSystem(forPath: directory))?[.systemFreeSize] as? NSNumber)?.int64Value ?? 0
    }

    /// A numeric path or query id; nil when the text is not one.
    static func id(_ text: String) -> Int64? { Int64(text) }

    static func checkName(_ name: String) throws(APIError) {
        guard (1...200).contains(name.count), !name.contains(where: \.isNewline) else {
            throw APIError.badRequest("name must be 1-200 characters on one line", field: "name")
        }
    }

    static func object(_ contact: Contact) -> [String: Any] {
        var fields: [String: Any] = [:]
        for (name, value) in contact.fields {
            switch value {
            case .text(let text), .date(let text): fields[name] = text
            case .number(let number): fields[name] = number
            case .boolean(let flag): fields[name] = flag
            }
        }
        var object: [String: Any] = ["id": contact.id, "email": contact.address, "fields": fields, "lists": contact.lists,
                                     "created_at": NativeAPI.iso(contact.createdAt), "updated_at": NativeAPI.iso(contact.updatedAt)]
        for (key, date) in [("last_delivered_at", contact.lastDeliveredAt), ("last_opened_at", contact.lastOpenedAt),
                            ("last_clicked_at", contact.lastClickedAt), ("last_bounced_at", contact.lastBouncedAt)] {
            if let date { object[key] = NativeAPI.iso(date) }
        }
        return object
    }

    static func object(_ item: ContactImport) -> [String: Any] {
        var object: [String: Any] = ["id": item.id, "state": item.state.rawValue, "rows_read": item.rowsRead, "rows_valid": item.rowsValid,
                                     "rows_invalid": item.rowsInvalid, "applied": item.applied,
                                     "errors": item.errors.map { ["line": $0.line, "message": $0.message] as [String: Any] },
                                     "started_at": NativeAPI.iso(item.startedAt)]
        if let finished = item.finishedAt { object["finished_at"] = NativeAPI.iso(finished) }
        return object
    }

    static func object(_ segment: Segment) -> [String: Any] {
        ["id": segment.id, "name": segment.name, "segment": segment.expression.plain]
    }
}

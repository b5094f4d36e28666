import MIME

/// Entry points for the fuzzers in `Fuzz/` (package access).
package enum RelayFuzzing {
    /// A message as a report is read: its MIME structure walked (parts of
    /// parts, a few levels deep, each decoded), then the report parser.
    package static func report(_ bytes: [UInt8]) {
        if let entity = MIMEEntity(bytes[...]) { walk(entity, depth: 0) }
        if let report = FeedbackReport.parse(bytes), let code = report.replyCode {
            precondition((400...599).contains(code), "a report's reply code is 4yz or 5yz")
        }
        classify(bytes)
    }

    static let classifier = try? BounceClassifier.standard()

    /// The bytes as a remote server's reply text, read by the shipped rules at every command and with
    /// hosts taken from the bytes: the phrase automaton, the prefix scan and the embedded-code scan.
    package static func classify(_ bytes: [UInt8]) {
        guard let classifier else { return }
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        let host = String(decoding: bytes.prefix(64), as: UTF8.self)
        for command in [nil, "CONNECT", "MAIL", "RCPT", "DATA"] {
            let observation = FailureObservation(kind: .reply(code: 550, enhanced: nil, text: text), remoteHost: host,
                                                 recipientDomain: "docomo.ne.jp", command: command)
            let (result, tried) = classifier.explain(observation)
            precondition(result == classifier.classify(observation), "explain and classify agree")
            precondition(!tried.isEmpty)
        }
    }

    static func walk(_ entity: MIMEEntity, depth: Int) {
        _ = entity.decodedBody
        _ = entity.contentType
        guard depth < 4 else { return }
        for part in entity.parts { walk(part, depth: depth + 1) }
    }

    /// A header section and every address field in it, then the sender
    /// policy over it: what the intake does with any message's bytes.
    package static func headerSection(_ bytes: [UInt8]) {
        guard let section = try? HeaderSection(parsing: bytes) else { return }
        for field in section.fields {
            precondition(field.range.lowerBound >= 0 && field.range.upperBound <= bytes.count && field.valueRange.upperBound <= bytes.count,
                         "a field outside the message")
            let value = field.unfoldedBytes(in: bytes[...])
            if let list = try? AddressList(parsing: value) {
                for text in list.displayedTexts { _ = SenderPolicy.domainsShown(in: text) }
                for mailbox in list.mailboxes { _ = SenderPolicy.domain(mailbox.domain) }
            }
            _ = EncodedWords.decodeText(String(decoding: value, as: UTF8.self))
        }
        let principal = Principal.account(AuthenticatedAccount(id: 1, name: "fuzz", domains: ["fuzz.example"], verifiedDomains: ["fuzz.example"]))
        _ = SenderPolicy(requireVerifiedDomains: true).check(header: section, of: bytes, principal: principal)
    }
}

import Foundation
import Testing
@testable import API
@testable import Store

struct CampaignTests {
    /// The campaign runner's doorbell: a ring wakes a wait long before its time, a ring with nobody waiting is
    /// kept for the next wait (and only one), an unrung wait ends at its time, a cancelled one at once, and one
    /// displaced by a second wait at once.
    @Test func aDoorbellWakesItsWaiterAndKeepsARingForTheNextWait() async throws {
        let bell = Doorbell()
        let clock = ContinuousClock()
        var began = clock.now
        bell.ring()
        bell.ring()
        await bell.wait(upTo: .seconds(60))
        #expect(clock.now - began < .seconds(30), "a ring made before the wait ends it at once")
        began = clock.now
        await bell.wait(upTo: .milliseconds(200))
        #expect(clock.now - began >= .milliseconds(200), "two rings with nobody waiting are one")
        began = clock.now
        async let woken: Void = bell.wait(upTo: .seconds(60))
        try await Task.sleep(for: .milliseconds(50))
        bell.ring()
        await woken
        #expect(clock.now - began < .seconds(30))
        began = clock.now
        let waiting = Task { await bell.wait(upTo: .seconds(60)) }
        waiting.cancel()
        await waiting.value
        #expect(clock.now - began < .seconds(30), "a cancelled wait ends")
        began = clock.now
        await bell.wait(upTo: .milliseconds(100))
        #expect(clock.now - began >= .milliseconds(100), "the cancelled wait's ring is not kept")
        // One waiter at a time: a second wait ends the first at once (neither is left hanging).
        began = clock.now
        let first = Task { await bell.wait(upTo: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(300))
        await bell.wait(upTo: .milliseconds(100))
        await first.value
        #expect(clock.now - began < .seconds(30))
    }

    @Test func theTokenizerReadsTheSameRecordsWhateverTheChunks() {
        let text = "\u{FEFF}email,氏名\r\na@x.jp,\"山田, \"\"太郎\"\"\"\r\nb@x.jp,\"二行\nの名前\"\nc@x.jp,last"
        let bytes = Array(text.utf8)
        func records(chunk: Int) -> [[String]] {
            var tokenizer = CSVTokenizer()
            var found: [[String]] = []
            let emit = { (record: CSVTokenizer.Record) -> Bool in
                found.append(record.fields.map { String(decoding: $0, as: UTF8.self) })
                return true
            }
            var index = 0
            while index < bytes.count {
                _ = tokenizer.feed(bytes[index..<min(bytes.count, index + chunk)], emit)
                index += chunk
            }
            tokenizer.finish(emit)
            return found
        }
        let whole = records(chunk: bytes.count)
        #expect(whole == [["email", "氏名"], ["a@x.jp", "山田, \"太郎\""], ["b@x.jp", "二行\nの名前"], ["c@x.jp", "last"]])
        for chunk in [1, 2, 3, 7] { #expect(records(chunk: chunk) == whole) }
        var tokenizer = CSVTokenizer()
        tokenizer.maximumFieldBytes = 4
        var overflow = false
        _ = tokenizer.feed(Array("abcdefgh,x\n".utf8)) { overflow = $0.overflow; return true }
        #expect(overflow, "a field past the limit is cut and flagged")
    }

    @Test func shiftJISRowsAreReadAndBadOnesNamedByLine() throws {
        let csv = "email,氏名,ポイント,誕生日\r\nyamada@x.jp,髙橋 ①子,1200,1990/4/1\r\nnot-an-address,x,1,1990-01-01\r\nb@x.jp,y,many,1990-01-01\r\n"
        let data = try #require(csv.data(using: .shiftJIS))
        var reader = ContactCSV.Reader(fields: [ContactField(name: "氏名", kind: .text, slot: 1), ContactField(name: "ポイント", kind: .number, slot: 2),
                                                ContactField(name: "誕生日", kind: .date, slot: 3)], charset: .auto)
        var tokenizer = CSVTokenizer()
        _ = tokenizer.feed(Array(data)) { reader.read($0); return true }
        tokenizer.finish { reader.read($0); return true }
        #expect(reader.charset == .shiftJIS, "a field that is not UTF-8 settles auto on Shift_JIS")
        #expect(reader.staged.count == 1 && reader.staged[0].address == "yamada@x.jp")
        #expect(reader.slots == [1, 2, 3])
        #expect(reader.staged[0].values == [.text("髙橋 ①子"), .number(1200), .date("1990-04-01")])
        #expect(reader.errors.map(\.line) == [3, 4] && reader.invalid == 2)
        #expect(reader.errors[1].message.hasPrefix("ポイント: not a number"))
    }

    @Test func japaneseNamesRenderInMustache() throws {
        let renderer = try TemplateRenderer(subject: "{{氏名}}様", text: "{{#会員}}会員 {{/会員}}{{ポイント}}点 {{{氏名}}} {{! コメント}}", html: nil)
        let rendered = try renderer.render(["氏名": .string("山田"), "ポイント": .number(1200), "会員": .bool(true)])
        #expect(rendered.subject == "山田様")
        #expect(rendered.text == "会員 1200点 山田 ")
        #expect(MustacheNames.rewrite("plain {{name}}") == "plain {{name}}")
    }

    @Test func theABDecisionSaysHowSureItIs() {
        let clear = ABTestDecision(arms: [.init(delivered: 50, successes: 10), .init(delivered: 50, successes: 40)], criterion: "clicks")
        #expect(clear.winner == 1 && clear.outcome == "winner")
        #expect((clear.confidence ?? 0) > 0.999 && (clear.z ?? 0) > 5.9 && (clear.z ?? 0) < 6.1)
        let tie = ABTestDecision(arms: [.init(delivered: 100, successes: 20), .init(delivered: 100, successes: 20)], criterion: "opens")
        #expect(tie.winner == 0 && tie.outcome == "tie")
        let few = ABTestDecision(arms: [.init(delivered: 100, successes: 1), .init(delivered: 100, successes: 3)], criterion: "opens")
        #expect(few.winner == 0 && few.outcome == "too_few_events" && few.explanation.contains("too few"))
        #expect(ABTestDecision.percent(0.8271) == "82.7%")
    }
}

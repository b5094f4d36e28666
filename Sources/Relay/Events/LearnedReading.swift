import Foundation
import SMTPCore

/// The classifier's reading of a reply's words as a whole, learned from the
/// labelled corpus (`scripts/train-classifier.py`, docs/classification.md):
/// a multinomial logistic regression over the reply's words, pairs of
/// neighbouring words, its codes and the command. It is read after the
/// provider, text and generic rules and before the codes, so that a reply no
/// rule knows is placed by what its words resemble rather than by a code
/// that servers also send for other reasons.
///
/// It never gives a verdict on the recipient (`mayGive`): its categories
/// never suppress.
public struct LearnedReading: Sendable {
    let classes: [BounceCategory]
    let intercepts: [Double]
    /// Row `r` of the weights is `weights[r * classes.count ..< (r + 1) * classes.count]`.
    let weights: [Double]
    /// The features' words by number, so that a pair of words is looked up by two numbers, not a new string.
    let wordNumbers: WordTable
    let addressNumber, numberNumber, hostNumber: Int?
    /// By word number: the row of the word as a feature (-1: it is one only beside another word).
    let wordRows: [Int]
    /// By pair of word numbers (`first << 32 | second`): the row of the pair.
    let pairRows: NumberTable
    /// The codes and the command (`#code 550`, `#command RCPT`), by their text.
    let otherRows: [String: Int]
    let rowCount: Int

    /// Replies with the probabilities the training script computed for them, to hold this reading to the script's.
    public struct Check: Decodable, Sendable {
        public var text: String
        public var code: Int
        public var enhanced: String?
        public var command: String?
        public var probabilities: [Double]
    }
    public let checks: [Check]
    /// A reading less likely than this gives way to the codes: unsure, it would only be a guess.
    public let leastProbability: Double

    public struct InvalidModel: Error, CustomStringConvertible {
        public var description: String
    }

    struct File: Decodable {
        var classes: [String]
        var intercepts: [Int]
        var features: [String]
        var weights: [Int]
        var leastProbability: Double?
        var checks: [Check]?
    }

    /// Weights are written as integers in thousandths.
    static let scale = 1000.0

    public init(json: Data) throws {
        let file = try JSONDecoder().decode(File.self, from: json)
        classes = try file.classes.map { name in
            guard let category = BounceCategory(rawValue: name) else { throw InvalidModel(description: "unknown category \(name)") }
            return category
        }
        guard !classes.isEmpty, file.intercepts.count == classes.count,
              file.weights.count == file.features.count * classes.count else {
            throw InvalidModel(description: "\(file.features.count) features, \(classes.count) classes, \(file.intercepts.count) intercepts and \(file.weights.count) weights do not agree")
        }
        intercepts = file.intercepts.map { Double($0) / LearnedReading.scale }
        weights = file.weights.map { Double($0) / LearnedReading.scale }
        var numbers: [String: Int] = [:]
        var wordRows: [Int] = []
        func number(_ word: Substring) -> Int {
            if let known = numbers[String(word)] { return known }
            numbers[String(word)] = wordRows.count
            wordRows.append(-1)
            return wordRows.count - 1
        }
        var pairRows: [Int: Int] = [:]
        var otherRows: [String: Int] = [:]
        for (row, feature) in file.features.enumerated() {
            let parts = feature.split(separator: " ")
            if feature.hasPrefix("#") {
                otherRows[feature] = row
            } else if parts.count == 1 {
                wordRows[number(parts[0])] = row
            } else if parts.count == 2 {
                pairRows[number(parts[0]) << 32 | number(parts[1])] = row
            } else {
                throw InvalidModel(description: "feature \"\(feature)\" is neither a word, a pair of words nor a code")
            }
        }
        wordNumbers = WordTable(numbers)
        addressNumber = numbers[LearnedReading.address]
        numberNumber = numbers[LearnedReading.number]
        hostNumber = numbers[LearnedReading.host]
        self.wordRows = wordRows
        self.pairRows = NumberTable(pairRows)
        rowCount = file.features.count
        self.otherRows = otherRows
        checks = file.checks ?? []
        leastProbability = file.leastProbability ?? 0
    }

    public static func shipped() throws -> LearnedReading {
        guard let url = Bundle.module.url(forResource: "classification-model", withExtension: "json", subdirectory: "Resources")
                ?? Bundle.module.url(forResource: "classification-model", withExtension: "json") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "Hikyaku_Relay.resources/Resources/classification-model.json"])
        }
        return try LearnedReading(json: Data(contentsOf: url))
    }

    /// Categories the reading may give: none that suppresses (`AutomaticSuppression`), at once or when
    /// repeated. Those are left to rules, which say why.
    public static func mayGive(_ category: BounceCategory) -> Bool {
        !AutomaticSuppression.hardCategories.contains(category.rawValue) && !AutomaticSuppression.softCategories.contains(category.rawValue)
    }

    /// The probability of each category, most likely first; nil when no word of the reply was seen in training.
    public func ranking(text: String, code: Int, enhanced: EnhancedStatusCode?, command: String?) -> [(category: BounceCategory, probability: Double)]? {
        // Folded only as far as it is read, whatever the length given.
        ranking(folded: PhraseMatcher.fold(String(decoding: text.utf8.prefix(LearnedReading.readBytes), as: UTF8.self)),
                code: code, enhanced: enhanced, command: command)
    }

    /// As `ranking(text:…)`, for a text already folded (`PhraseMatcher.fold`) and bounded.
    func ranking(folded text: [UInt8], code: Int, enhanced: EnhancedStatusCode?, command: String?) -> [(category: BounceCategory, probability: Double)]? {
        var tally = Tally(intercepts: intercepts, rows: rowCount)
        var words = Words(text, limit: LearnedReading.readBytes)
        var previous = -1
        while let word = words.next() {
            let number: Int
            switch word {
            case .address: number = addressNumber ?? -1
            case .number: number = numberNumber ?? -1
            case .host: number = hostNumber ?? -1
            case .word(let letters): number = wordNumbers.number(of: letters, in: text) ?? -1
            }
            if number >= 0, number < wordRows.count {
                tally.add(wordRows[number], weights)
                if previous >= 0, let row = pairRows.value(for: previous << 32 | number) { tally.add(row, weights) }
            }
            previous = number
        }
        let wordFeatures = tally.count
        let commandName = command.flatMap { $0.isEmpty ? nil : $0.uppercased() } ?? "NONE"
        for feature in ["#code \(code / 100)", "#code \(code)", "#command " + commandName] {
            if let row = otherRows[feature] { tally.add(row, weights) }
        }
        if let enhanced {
            for feature in ["#enhanced \(enhanced.subject)", "#enhanced \(enhanced.subject).\(enhanced.detail)"] {
                if let row = otherRows[feature] { tally.add(row, weights) }
            }
        }
        // It reads words: codes alone are the code rules' to read.
        guard wordFeatures > 0 else { return nil }
        let count = tally.count
        let scores = tally.scores
        guard count > 0 else { return nil }
        let length = 1 / Double(count).squareRoot()
        let scaled = zip(scores, intercepts).map { $1 + ($0 - $1) * length }
        let top = scaled.max() ?? 0
        let exponentials = scaled.map { Foundation.exp($0 - top) }
        let total = exponentials.reduce(0, +)
        return zip(classes, exponentials).map { ($0, $1 / total) }.sorted { $0.probability > $1.probability }
    }

    /// The reading reads this far into a reply: what a reply says comes first (what follows is mostly a
    /// URL or a transcript), and it bounds the work. Replies of the corpus are shorter but for eight.
    static let readBytes = 512

    /// The words standing for an address, a number and a host.
    static let address = "@addr", number = "0", host = "@host"

    enum Word {
        case address, number, host
        /// Letters of the text, at these positions.
        case word(Range<Int>)
    }

    /// The sums of the weights of a reply's features, each feature counted once however often it occurs.
    struct Tally {
        var scores: [Double]
        var count = 0
        /// A bit per row: counted already.
        private var counted: [UInt64]
        private let rows: Int

        init(intercepts: [Double], rows: Int) {
            scores = intercepts
            self.rows = rows
            counted = [UInt64](repeating: 0, count: (rows + 63) / 64)
        }

        mutating func add(_ row: Int, _ weights: [Double]) {
            guard row >= 0, row < rows else { return }
            let bit: UInt64 = 1 << UInt64(truncatingIfNeeded: row & 63)
            guard counted[row >> 6] & bit == 0 else { return }
            counted[row >> 6] |= bit
            count += 1
            let base = row * scores.count
            guard base + scores.count <= weights.count else { return }
            for index in scores.indices { scores[index] += weights[base + index] }
        }
    }

    /// The words of a folded text as the training script reads them: runs of letters, digits and `._%+@-`,
    /// trimmed of `._%+-`; a run holding `@` is an address, one of digits (and dots) a number, one with a dot
    /// a host; the rest split at `_%+-`, where a word with a digit is a number. Positions, not slices: a slice
    /// of the text would be counted in and out for every word.
    struct Words {
        let text: [UInt8]
        /// How far the text is read.
        let count: Int
        /// Where the next run starts to be looked for.
        private var position = 0
        /// Within a run of letters and separators: where its next word starts, and where the run ends.
        private var wordStart = 0
        private var runEnd = 0

        init(_ text: [UInt8], limit: Int) {
            self.text = text
            count = min(text.count, max(limit, 0))
        }

        static func inRun(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "%"), UInt8(ascii: "+"), UInt8(ascii: "@"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }

        static func separates(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "_") || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
        }

        static func trimmed(_ byte: UInt8) -> Bool { byte == UInt8(ascii: ".") || separates(byte) }

        mutating func next() -> Word? {
            while true {
                if let word = nextInRun() { return word }
                guard let run = nextRun() else { return nil }
                var address = false, letter = false, dot = false
                for index in run {
                    let byte = text[index]
                    address = address || byte == UInt8(ascii: "@")
                    letter = letter || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    dot = dot || byte == UInt8(ascii: ".")
                }
                if address { return .address }
                if !letter { return .number }
                if dot { return .host }
                wordStart = run.lowerBound
                runEnd = run.upperBound
            }
        }

        /// The next run of letters, digits and `._%+@-`, trimmed; nil at the end of the text.
        private mutating func nextRun() -> Range<Int>? {
            while position < count {
                guard Words.inRun(text[position]) else {
                    position += 1
                    continue
                }
                var start = position
                var end = position + 1
                while end < count, Words.inRun(text[end]) { end += 1 }
                position = end
                while start < end, Words.trimmed(text[start]) { start += 1 }
                while end > start, Words.trimmed(text[end - 1]) { end -= 1 }
                if start < end { return start..<end }
            }
            return nil
        }

        /// The next word of a run of letters split at `_%+-`.
        private mutating func nextInRun() -> Word? {
            while wordStart < runEnd, Words.separates(text[wordStart]) { wordStart += 1 }
            guard wordStart < runEnd else { return nil }
            var end = wordStart
            var digit = false
            while end < runEnd, !Words.separates(text[end]) {
                digit = digit || (text[end] >= UInt8(ascii: "0") && text[end] <= UInt8(ascii: "9"))
                end += 1
            }
            defer { wordStart = end }
            return digit ? .number : .word(wordStart..<end)
        }
    }
}

/// Words by number, looked up by their bytes without making a string of them: a word is read for each run of
/// letters in a reply, and hashing a `String` costs more than the rest of the reading.
struct WordTable: Sendable {
    /// Every word's bytes, one after another; word `n` is `bytes[ends[n - 1] ..< ends[n]]`.
    private let bytes: [UInt8]
    private let ends: [Int]
    /// Open addressing: a word number, or -1 for an empty slot; the count is a power of two at least twice the words'.
    private let slots: [Int]

    init(_ numbers: [String: Int]) {
        let words = numbers.sorted { $0.value < $1.value }.map { Array($0.key.utf8) }
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for word in words {
            bytes += word
            ends.append(bytes.count)
        }
        var size = 16
        while size < words.count * 2 { size *= 2 }
        var slots = [Int](repeating: -1, count: size)
        for (number, word) in words.enumerated() {
            var slot = WordTable.hash(word.indices, in: word) & (size - 1)
            while slots[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = number
        }
        self.bytes = bytes
        self.ends = ends
        self.slots = slots
    }

    /// FNV-1a: the words are known and few, and a collision costs only a comparison.
    static func hash(_ word: Range<Int>, in text: [UInt8]) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for index in word { hash = (hash ^ UInt64(truncatingIfNeeded: text[index])) &* 0x0000_0100_0000_01b3 }
        return Int(truncatingIfNeeded: hash >> 1)
    }

    /// The number of the word at `word` in `text` (positions `WordTable` reads only within `text`).
    func number(of word: Range<Int>, in text: [UInt8]) -> Int? {
        guard word.lowerBound >= 0, word.upperBound <= text.count else { return nil }
        let mask = slots.count - 1
        var slot = WordTable.hash(word, in: text) & mask
        while slots[slot] >= 0 {
            let number = slots[slot]
            let start = number == 0 ? 0 : ends[number - 1]
            if ends[number] - start == word.count, zip(start..<ends[number], word).allSatisfy({ bytes[$0] == text[$1] }) { return number }
            slot = (slot + 1) & mask
        }
        return nil
    }
}

/// Numbers to numbers by open addressing: the pairs of words of a reply are looked up a hundred times for a
/// long reply, and a multiplication hashes a number faster than `Hasher` does.
struct NumberTable: Sendable {
    /// A key and its value per slot; an empty slot's key is -1 (keys are never negative).
    private let keys: [Int]
    private let values: [Int]

    init(_ pairs: [Int: Int]) {
        var size = 16
        while size < pairs.count * 2 { size *= 2 }
        var keys = [Int](repeating: -1, count: size)
        var values = [Int](repeating: 0, count: size)
        for (key, value) in pairs where key >= 0 {
            var slot = NumberTable.slot(key, size)
            while keys[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            keys[slot] = key
            values[slot] = value
        }
        self.keys = keys
        self.values = values
    }

    static func slot(_ key: Int, _ size: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(truncatingIfNeeded: key) &* 0x9e37_79b9_7f4a_7c15) >> 32) & (size - 1)
    }

    func value(for key: Int) -> Int? {
        guard key >= 0 else { return nil }
        var slot = NumberTable.slot(key, keys.count)
        while keys[slot] >= 0 {
            if keys[slot] == key { return values[slot] }
            slot = (slot + 1) & (keys.count - 1)
        }
        return nil
    }
}

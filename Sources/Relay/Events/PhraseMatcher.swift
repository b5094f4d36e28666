import Foundation

/// Finds which of many patterns occur in a text in one pass over it, so that
/// classifying a reply costs microseconds whatever the number of rules.
///
/// Most rule patterns are phrases with alternatives (`(user|mailbox) (not
/// found|unknown)`, `over ?quota`, `\bspf\b`): `PatternExpansion` turns each
/// into the finite set of phrases it matches, and an Aho–Corasick automaton
/// over all of them reports every phrase found, in time linear in the text.
/// A pattern beyond that (`.*`, `\s*`, `\d`, anchors) stays a regular
/// expression; the phrase it cannot match without (its longest literal run)
/// gates it, so that it runs only on texts that contain that phrase.
struct PhraseMatcher: Sendable {
    /// One phrase: lowercased UTF-8, and whether a word must end just before or after it (`\b`).
    struct Phrase: Hashable, Sendable {
        var bytes: [UInt8]
        var boundaryBefore: Bool
        var boundaryAfter: Bool
        /// `^` and `$`: only at the start, or the end, of the text.
        var atStart = false
        var atEnd = false
    }

    /// Trie nodes: sorted transitions, the failure link, and the phrases ending here (by id).
    private var transitions: [[(byte: UInt8, next: Int32)]] = [[]]
    private var failure: [Int32] = [0]
    private var outputs: [[Int32]] = [[]]
    private var phrases: [Phrase] = []
    /// For each phrase, the pattern ids it stands for.
    private var owners: [[Int]] = []
    private var index: [Phrase: Int] = [:]
    /// One more than the largest owner id.
    private var ownerLimit = 0
    /// The automaton as a table, built by `finish`: the next node for each node and byte class, every
    /// failure link followed in advance, so that each byte of a text costs one lookup.
    private var classes = [UInt16](repeating: 0, count: 256)
    private var classCount = 1
    private var table: [Int32] = []
    /// The same table in half the memory, when the nodes allow (most rule sets): fewer cache misses per byte.
    private var compact: [UInt16] = []
    /// The phrases ending at each node (failure links included), flattened: `outputs[start[node]..<start[node + 1]]`.
    private var outputStart: [Int32] = []
    private var outputList: [Int32] = []

    /// A set of owner ids, as bits.
    struct Owners: Sendable {
        var words: [UInt64]

        func contains(_ owner: Int) -> Bool {
            let word = owner >> 6
            return word < words.count && words[word] & (1 << UInt64(truncatingIfNeeded: owner & 63)) != 0
        }

        mutating func insert(_ owner: Int) {
            let word = owner >> 6
            if word < words.count { words[word] |= 1 << UInt64(truncatingIfNeeded: owner & 63) }
        }
    }

    /// Adds `phrase` as a witness of pattern `owner`.
    mutating func add(_ phrase: Phrase, owner: Int) {
        // Node ids are kept in 31 bits (and doubled in the table): a rule set that large is refused phrase by phrase.
        guard transitions.count + phrase.bytes.count < Int(truncatingIfNeeded: Int32.max / 2) else { return }
        ownerLimit = max(ownerLimit, owner + 1)
        if let existing = index[phrase] {
            owners[existing].append(owner)
            return
        }
        let id = phrases.count
        phrases.append(phrase)
        owners.append([owner])
        index[phrase] = id
        var node = 0
        for byte in phrase.bytes {
            if let next = step(node, byte) {
                node = next
            } else {
                transitions.append([])
                failure.append(0)
                outputs.append([])
                let next = transitions.count - 1
                transitions[node].append((byte, Int32(truncatingIfNeeded: next)))
                transitions[node].sort { $0.byte < $1.byte }
                node = next
            }
        }
        outputs[node].append(Int32(truncatingIfNeeded: id))
    }

    private func step(_ node: Int, _ byte: UInt8) -> Int? {
        for transition in transitions[node] where transition.byte == byte { return Int(truncatingIfNeeded: transition.next) }
        return nil
    }

    /// Computes the failure links (breadth first); call once after the last `add`.
    mutating func finish() {
        defer { buildTable() }
        var queue: [Int] = []
        for transition in transitions[0] {
            failure[Int(truncatingIfNeeded: transition.next)] = 0
            queue.append(Int(truncatingIfNeeded: transition.next))
        }
        var head = 0
        while head < queue.count {
            let node = queue[head]
            head += 1
            for transition in transitions[node] {
                let child = Int(truncatingIfNeeded: transition.next)
                queue.append(child)
                var fallback = Int(truncatingIfNeeded: failure[node])
                while fallback != 0, step(fallback, transition.byte) == nil { fallback = Int(truncatingIfNeeded: failure[fallback]) }
                let target = step(fallback, transition.byte) ?? 0
                failure[child] = Int32(truncatingIfNeeded: target == child ? 0 : target)
                outputs[child] += outputs[Int(truncatingIfNeeded: failure[child])]
            }
        }
    }

    /// The dense table over byte classes (bytes that no phrase uses share class 0).
    private mutating func buildTable() {
        var used = Set<UInt8>()
        for node in transitions { for transition in node { used.insert(transition.byte) } }
        classes = [UInt16](repeating: 0, count: 256)
        classCount = 1
        for byte in used.sorted() {
            classes[Int(truncatingIfNeeded: byte)] = UInt16(truncatingIfNeeded: classCount)
            classCount += 1
        }
        let nodes = transitions.count
        table = [Int32](repeating: 0, count: nodes * classCount)
        // Breadth first, so that a node's failure target has its row already.
        var order = [0]
        var head = 0
        while head < order.count {
            let node = order[head]
            head += 1
            for transition in transitions[node] { order.append(Int(truncatingIfNeeded: transition.next)) }
        }
        // An entry is the next node times two, plus one when phrases end there.
        let ends = outputs.map { !$0.isEmpty }
        let entry = { (node: Int32) -> Int32 in node << 1 | (ends[Int(truncatingIfNeeded: node)] ? 1 : 0) }
        for node in order {
            for byteClass in 1..<classCount {
                table[node * classCount + byteClass] = node == 0 ? 0 : table[Int(truncatingIfNeeded: failure[node]) * classCount + byteClass]
            }
            for transition in transitions[node] {
                table[node * classCount + Int(truncatingIfNeeded: classes[Int(truncatingIfNeeded: transition.byte)])] = entry(transition.next)
            }
        }
        compact = nodes * 2 < Int(truncatingIfNeeded: UInt16.max) ? table.map { UInt16(truncatingIfNeeded: $0) } : []
        outputStart = [0]
        outputList = []
        for node in 0..<nodes {
            outputList += outputs[node]
            outputStart.append(Int32(truncatingIfNeeded: outputList.count))
        }
    }

    /// The ids of the patterns with a phrase in `text` (already `folded`).
    /// The owners of the phrases in `text` (folded): all of them, and those of phrases that lie outside
    /// `removed` (sorted, disjoint ranges: the text as read without them, from one pass).
    func owners(in text: [UInt8], outside removed: [Range<Int>]) -> (all: Owners, outside: Owners) {
        var all = Owners(words: [UInt64](repeating: 0, count: (ownerLimit + 63) / 64))
        var outside = all
        guard !table.isEmpty else { return (all, outside) }
        let width = classCount
        let useCompact = !compact.isEmpty
        table.withUnsafeBufferPointer { table in
          compact.withUnsafeBufferPointer { compact in
            classes.withUnsafeBufferPointer { classes in
                text.withUnsafeBufferPointer { text in
                    var node = 0
                    for position in 0..<text.count {
                        let slot = node &* width &+ Int(truncatingIfNeeded: classes[Int(truncatingIfNeeded: text[position])])
                        let entry = useCompact ? Int(truncatingIfNeeded: compact[slot]) : Int(truncatingIfNeeded: table[slot])
                        node = entry >> 1
                        guard entry & 1 != 0 else { continue }
                        for id in outputList[Int(truncatingIfNeeded: outputStart[node])..<Int(truncatingIfNeeded: outputStart[node + 1])] {
                            let phrase = phrases[Int(truncatingIfNeeded: id)]
                            let start = position + 1 - phrase.bytes.count
                            if phrase.boundaryBefore, start > 0, PhraseMatcher.isWordByte(text[start - 1]) { continue }
                            if phrase.boundaryAfter, position + 1 < text.count, PhraseMatcher.isWordByte(text[position + 1]) { continue }
                            if phrase.atStart, start != 0 { continue }
                            if phrase.atEnd, position + 1 != text.count { continue }
                            let clear = !removed.contains { $0.lowerBound <= position && start < $0.upperBound }
                            for owner in owners[Int(truncatingIfNeeded: id)] {
                                all.insert(owner)
                                if clear { outside.insert(owner) }
                            }
                        }
                    }
                }
            }
          }
        }
        return (all, outside)
    }

    static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F
    }

    /// The text as the phrases are written: ASCII letters lowercased, every white space a space.
    static func fold(_ text: String) -> [UInt8] {
        var bytes = Array(text.utf8)
        for index in bytes.indices {
            let byte = bytes[index]
            if byte >= 0x41 && byte <= 0x5A {
                bytes[index] = byte + 0x20
            } else if byte == 0x09 || byte == 0x0A || byte == 0x0D {
                bytes[index] = 0x20
            }
        }
        return bytes
    }
}

/// The phrases a regular expression of the simple kind matches: literal
/// characters, escapes of punctuation, `\s` (a space), `\b` at either end,
/// groups with alternatives (`(a|b)`, `(?:a|b)`), classes of single
/// characters (`[sz]`), `?` after a character, a class or a group, and `^` and `$` at the ends.
/// Nil for anything else (`*`, `+`, `{m,n}`, `.`, `\d`, anchors, ranges) or
/// for more than `limit` phrases.
enum PatternExpansion {
    static let limit = 256

    static func phrases(_ pattern: String) -> [PhraseMatcher.Phrase]? {
        var characters = Array(pattern.unicodeScalars)
        var boundaryBefore = false
        var boundaryAfter = false
        var atStart = false
        var atEnd = false
        if characters.first == "^" {
            atStart = true
            characters.removeFirst()
        }
        if characters.count >= 2, characters.last == "$", characters[characters.count - 2] != "\\" {
            atEnd = true
            characters.removeLast()
        }
        if characters.starts(with: ["\\", "b"]) {
            boundaryBefore = true
            characters.removeFirst(2)
        }
        if characters.count >= 2, characters.suffix(2).elementsEqual(["\\", "b"]),
           !(characters.count >= 3 && characters[characters.count - 3] == "\\") {
            boundaryAfter = true
            characters.removeLast(2)
        }
        // An anchor or a boundary lifted off the ends belongs to the whole pattern only when it has no `|` at its top.
        if atStart || atEnd || boundaryBefore || boundaryAfter, hasTopLevelAlternative(characters) { return nil }
        // Letters with case beyond ASCII: the phrases are folded for ASCII only.
        if characters.contains(where: { !$0.isASCII && $0.properties.changesWhenCaseMapped }) { return nil }
        var position = 0
        guard let alternatives = sequence(characters, &position, depth: 0), position == characters.count else { return nil }
        var phrases: [PhraseMatcher.Phrase] = []
        var seen = Set<[UInt8]>()
        for text in alternatives {
            let bytes = PhraseMatcher.fold(text)
            // An empty alternative matches everywhere: not a phrase.
            guard let first = bytes.first, let last = bytes.last else { return nil }
            // `\b` beside punctuation means a word character on the other side: not this simple kind.
            if boundaryBefore && !PhraseMatcher.isWordByte(first) || boundaryAfter && !PhraseMatcher.isWordByte(last) { return nil }
            if seen.insert(bytes).inserted {
                phrases.append(PhraseMatcher.Phrase(bytes: bytes, boundaryBefore: boundaryBefore, boundaryAfter: boundaryAfter,
                                                    atStart: atStart, atEnd: atEnd))
            }
        }
        return phrases.isEmpty ? nil : phrases
    }

    static func hasTopLevelAlternative(_ characters: [Unicode.Scalar]) -> Bool {
        var depth = 0
        var index = 0
        var inClass = false
        while index < characters.count {
            let character = characters[index]
            if character == "\\" {
                index += 2
                continue
            }
            if inClass {
                if character == "]" { inClass = false }
            } else if character == "[" {
                inClass = true
            } else if character == "(" {
                depth += 1
            } else if character == ")" {
                depth -= 1
            } else if character == "|", depth == 0 {
                return true
            }
            index += 1
        }
        return false
    }

    /// Alternatives separated by `|`, up to a `)` (left unread) or the end.
    private static func sequence(_ characters: [Unicode.Scalar], _ position: inout Int, depth: Int) -> [String]? {
        var all: [String] = []
        var current = [""]
        while position < characters.count {
            let character = characters[position]
            if character == ")" { break }
            if character == "|" {
                position += 1
                all += current
                current = [""]
                continue
            }
            guard var atom = self.atom(characters, &position, depth: depth) else { return nil }
            if position < characters.count, characters[position] == "?" {
                position += 1
                atom.append("")
            }
            if position < characters.count, "*+{".unicodeScalars.contains(characters[position]) { return nil }
            current = current.flatMap { prefix in atom.map { prefix + $0 } }
            if current.count > limit { return nil }
        }
        all += current
        return all.count > limit ? nil : all
    }

    /// One character, escape, class or group, as its alternatives.
    private static func atom(_ characters: [Unicode.Scalar], _ position: inout Int, depth: Int) -> [String]? {
        let character = characters[position]
        switch character {
        case "(":
            position += 1
            if position + 1 < characters.count, characters[position] == "?", characters[position + 1] == ":" { position += 2 }
            guard depth < 4, let inner = sequence(characters, &position, depth: depth + 1),
                  position < characters.count, characters[position] == ")" else { return nil }
            position += 1
            return inner
        case "[":
            var options: [String] = []
            position += 1
            while position < characters.count, characters[position] != "]" {
                let member = characters[position]
                if member == "\\" || member == "^" || member == "-" { return nil }
                options.append(String(member))
                position += 1
            }
            guard position < characters.count, !options.isEmpty else { return nil }
            position += 1
            return options
        case "\\":
            guard position + 1 < characters.count else { return nil }
            let escaped = characters[position + 1]
            position += 2
            if escaped == "s" { return [" "] }
            // Punctuation stands for itself; letters and digits are classes or anchors (\d, \w, \b inside): not simple.
            guard escaped.isASCII, !CharacterSet.alphanumerics.contains(escaped) else { return nil }
            return [String(escaped)]
        case ".", "*", "+", "?", "{", "}", "^", "$", "]":
            return nil
        default:
            position += 1
            return [String(character)]
        }
    }

    /// The longest run of literal characters a pattern cannot match without (outside groups, not made
    /// optional), lowercased; nil when shorter than three bytes.
    static func requiredPhrase(_ pattern: String) -> PhraseMatcher.Phrase? {
        let characters = Array(pattern.unicodeScalars)
        // What this reading does not follow — escapes that stand for other characters (\x41, \u00fc, \0, \cX, \Q…\E),
        // flags (`(?x)`, `(?i)`), nested classes, letters with case beyond ASCII — leaves the pattern ungated.
        var escaped = false
        for (index, character) in characters.enumerated() {
            // An escaped character stands for itself (`\[` is a bracket, not a class).
            if escaped {
                escaped = false
                if !character.isASCII && character.properties.changesWhenCaseMapped { return nil }
                continue
            }
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            if character == "\\", let next, "xuUcQEpPN0123456789".unicodeScalars.contains(next) { return nil }
            if character == "\\" { escaped = true; continue }
            if character == "(", next == "?", index + 2 < characters.count, characters[index + 2] != ":" { return nil }
            if character == "[", next == "[" || next == ":" { return nil }
            if !character.isASCII && character.properties.changesWhenCaseMapped { return nil }
        }
        var best = ""
        var run = ""
        var depth = 0
        var index = 0
        var inClass = false
        func close() {
            if run.utf8.count > best.utf8.count { best = run }
            run = ""
        }
        while index < characters.count {
            let character = characters[index]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            if inClass {
                if character == "\\" { index += 1 } else if character == "]" { inClass = false }
                index += 1
                continue
            }
            switch character {
            case "\\":
                if depth == 0, let next, next.isASCII, !CharacterSet.alphanumerics.contains(next) {
                    run.unicodeScalars.append(next)
                } else {
                    close()
                }
                index += 2
                continue
            case "(":
                close()
                depth += 1
            case ")":
                close()
                depth = max(0, depth - 1)
            case "[":
                close()
                inClass = true
            case "|":
                // An alternative at the top: no phrase is required of every match.
                if depth == 0 { return nil }
                close()
            case ".", "^", "$":
                close()
            case "?", "*", "+", "{":
                // The character before is optional or repeated: it leaves the run.
                if !run.isEmpty { run.unicodeScalars.removeLast() }
                close()
                if character == "{" {
                    while index < characters.count, characters[index] != "}" { index += 1 }
                }
            default:
                if depth == 0 { run.unicodeScalars.append(character) } else { close() }
            }
            index += 1
        }
        close()
        let bytes = PhraseMatcher.fold(best)
        return bytes.count >= 3 ? PhraseMatcher.Phrase(bytes: bytes, boundaryBefore: false, boundaryAfter: false) : nil
    }
}

/// SendGrid's dynamic templates are written in Handlebars; Hikyaku renders
/// Mustache. The block helpers SendGrid's own examples use are rewritten to
/// their Mustache sections: `{{#if x}}…{{else}}…{{/if}}`, `{{#unless x}}`,
/// `{{#each list}}…{{this}}…{{/each}}`, `{{#with x}}`. Other helpers (`eq`,
/// `formatDate`, subexpressions) have no Mustache form and are refused at
/// send time with their name, instead of rendering something else.
///
/// Differences that remain: Mustache treats an empty string as true, where
/// Handlebars' `#if` treats it as false.
enum HandlebarsDialect {
    static func mustache(_ text: String) throws(APIError) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var stack: [(name: String, negated: Bool)] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            let triple = rest[open.upperBound...].hasPrefix("{")
            let closing = triple ? "}}}" : "}}"
            guard let close = rest[open.upperBound...].range(of: closing) else {
                output += rest[open.lowerBound...]
                rest = ""
                break
            }
            let inner = rest[open.upperBound..<close.lowerBound]
            rest = rest[close.upperBound...]
            if triple {
                output += "{{" + inner + "}}}"
                continue
            }
            let tag = inner.trimmingCharacters(in: .whitespaces)
            let words = tag.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            switch words.first {
            case "#if", "#each", "#with", "#unless":
                guard words.count == 2, let name = words.last, isPath(name) else {
                    throw unsupported(tag)
                }
                let negated = words[0] == "#unless"
                stack.append((name, negated))
                output += "{{\(negated ? "^" : "#")\(name)}}"
            case "else":
                guard words.count == 1, let top = stack.last else { throw unbalanced(tag) }
                output += "{{/\(top.name)}}{{\(top.negated ? "#" : "^")\(top.name)}}"
            case "/if", "/each", "/with", "/unless":
                guard let top = stack.popLast() else { throw unbalanced(tag) }
                output += "{{/\(top.name)}}"
            case "this":
                output += "{{.}}"
            default:
                if let first = words.first, first.hasPrefix("this."), words.count == 1 {
                    output += "{{" + first.dropFirst(5) + "}}"
                } else if let first = words.first, words.count > 1, !first.hasPrefix("!"), !first.hasPrefix("#"), !first.hasPrefix("^") {
                    throw unsupported(tag)
                } else {
                    output += "{{" + inner + "}}"
                }
            }
        }
        output += rest
        guard stack.isEmpty else { throw unbalanced("{{#…}} without its end") }
        return output
    }

    static func isPath(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }
    }

    static func unsupported(_ tag: String) -> APIError {
        APIError.badRequest("the Handlebars helper {{\(tag.prefix(60))}} is not supported (if, unless, each, with, else are)",
                            field: "template_id")
    }

    static func unbalanced(_ tag: String) -> APIError {
        APIError.badRequest("the template's blocks do not balance at {{\(tag.prefix(60))}}", field: "template_id")
    }
}

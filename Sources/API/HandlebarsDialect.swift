/// SendGrid's dynamic templates are written in Handlebars; Hikyaku renders
/// Mustache. The block helpers SendGrid's own examples use are rewritten:
/// `{{#if x}}…{{else}}…{{/if}}` and `{{#unless x}}` test `truthy(x)`, a
/// transform every template value has (false, 0, "", null, [] are false, as
/// in Handlebars), so that the block neither repeats for a list nor enters
/// an object; `{{#each list}}…{{this}}…{{/each}}` and `{{#with x}}` become
/// sections, which is what they are. Other helpers (`eq`, `formatDate`,
/// subexpressions) have no Mustache form and are refused with their name,
/// instead of rendering something else.
enum HandlebarsDialect {
    private struct Block {
        var name: String
        var negated: Bool
    }

    static func mustache(_ text: String) throws(APIError) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var stack: [Block] = []
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
                let name = inner.dropFirst().trimmingCharacters(in: .whitespaces)
                output += name == "this" ? "{{{.}}}" : name.hasPrefix("this.") ? "{{{" + name.dropFirst(5) + "}}}" : "{{" + inner + "}}}"
                continue
            }
            let tag = inner.trimmingCharacters(in: .whitespaces)
            let words = tag.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            switch words.first {
            case "#if", "#unless", "#each", "#with":
                guard words.count == 2, let path = words.last, isPath(path) else {
                    throw unsupported(tag)
                }
                let name = path == "this" ? "." : path.hasPrefix("this.") ? String(path.dropFirst(5)) : path
                let test = words[0] == "#if" || words[0] == "#unless"
                let block = Block(name: test ? "truthy(\(name))" : name, negated: words[0] == "#unless")
                stack.append(block)
                output += "{{\(block.negated ? "^" : "#")\(block.name)}}"
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

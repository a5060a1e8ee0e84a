/// A strict reader for the part of TOML 1.0 a config needs: tables (`[a.b]`), bare, quoted and
/// dotted keys, basic and literal strings (one-line and multi-line), integers (decimal, hex,
/// octal, binary, with `_`), floats (with `inf` and `nan`), booleans, and arrays of those.
/// Inline tables, arrays of tables and dates are refused with a message saying so.
///
/// It is ours so that hostile input is an error and never a crash: every path through it ends in
/// a value or a `TOMLReader.Failure` naming the line.
package enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    /// Keys in the order they appear.
    case table([(key: String, value: TOMLValue)])

    package static func == (a: TOMLValue, b: TOMLValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.float(let x), .float(let y)): x.bitPattern == y.bitPattern
        case (.bool(let x), .bool(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.table(let x), .table(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }
}

package struct TOMLReader {
    package struct Failure: Error, CustomStringConvertible {
        package var line: Int
        package var message: String
        package var description: String { "line \(line): \(message)" }
    }

    /// Parses `text` into its root table.
    package static func parse(_ text: String) throws(Failure) -> [(key: String, value: TOMLValue)] {
        var reader = TOMLReader(Array(text.unicodeScalars))
        return try reader.document()
    }

    private let s: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    /// The document as a tree under construction: tables by their full dotted path.
    private var root = Node()

    private init(_ scalars: [Unicode.Scalar]) { s = scalars }

    /// A table being built: its entries in order, and which keys hold sub-tables.
    private final class Node {
        var order: [String] = []
        var values: [String: TOMLValue] = [:]
        var tables: [String: Node] = [:]
        /// Defined by a `[header]` (a second header for it is an error) or implicitly.
        var explicit = false

        func tree() -> [(key: String, value: TOMLValue)] {
            order.map { key in (key, tables[key].map { .table($0.tree()) } ?? values[key]!) }
        }
    }

    private func fail(_ message: String) -> Failure { Failure(line: line, message: message) }

    private var atEnd: Bool { i >= s.count }
    private var current: Unicode.Scalar? { i < s.count ? s[i] : nil }
    private func peek(_ offset: Int) -> Unicode.Scalar? { i + offset < s.count ? s[i + offset] : nil }

    private mutating func advance() {
        if s[i] == "\n" { line += 1 }
        i += 1
    }

    private mutating func document() throws(Failure) -> [(key: String, value: TOMLValue)] {
        var table = root
        while true {
            skipBlankLines()
            guard let c = current else { break }
            if c == "[" {
                advance()
                if current == "[" { throw fail("arrays of tables ([[...]]) are not supported") }
                skipSpaces()
                let path = try keyPath()
                skipSpaces()
                guard current == "]" else { throw fail("expected ] to close the table header") }
                advance()
                try endOfLine()
                table = try node(at: path, header: true)
            } else {
                let path = try keyPath()
                skipSpaces()
                guard current == "=" else { throw fail("expected = after the key \(path.joined(separator: "."))") }
                advance()
                skipSpaces()
                let v = try value(depth: 0)
                try endOfLine()
                let parent = try node(at: path.dropLast(), header: false, from: table)
                try insert(path.last!, v, into: parent, path: path)
            }
        }
        return root.tree()
    }

    /// The table at `path` below `start`, created when missing.
    private func node(at path: some Collection<String>, header: Bool, from start: Node? = nil) throws(Failure) -> Node {
        var n = start ?? root
        for key in path {
            if n.values[key] != nil { throw fail("\(key) is a value, not a table") }
            if let next = n.tables[key] {
                n = next
            } else {
                let next = Node()
                n.tables[key] = next
                n.order.append(key)
                n = next
            }
        }
        if header {
            if n.explicit { throw fail("table [\(path.joined(separator: "."))] is defined twice") }
            n.explicit = true
        }
        return n
    }

    private func insert(_ key: String, _ v: TOMLValue, into n: Node, path: [String]) throws(Failure) {
        guard n.values[key] == nil, n.tables[key] == nil else { throw fail("key \(path.joined(separator: ".")) is defined twice") }
        n.values[key] = v
        n.order.append(key)
    }

    // MARK: - Whitespace and comments

    private mutating func skipSpaces() {
        while let c = current, c == " " || c == "\t" { advance() }
    }

    private mutating func skipComment() {
        if current == "#" { while let c = current, c != "\n" { advance() } }
    }

    private mutating func skipBlankLines() {
        while true {
            skipSpaces()
            skipComment()
            if current == "\n" { advance(); continue }
            if current == "\r", peek(1) == "\n" { advance(); advance(); continue }
            return
        }
    }

    /// Spaces, an optional comment, then a newline or the end.
    private mutating func endOfLine() throws(Failure) {
        skipSpaces()
        skipComment()
        if atEnd { return }
        if current == "\r", peek(1) == "\n" { advance() }
        guard current == "\n" else { throw fail("unexpected '\(current!.escaped(asASCII: true))' after the value") }
        advance()
    }

    /// Inside arrays: whitespace, newlines and comments.
    private mutating func skipArraySpace() {
        while true {
            skipSpaces()
            skipComment()
            if current == "\n" || current == "\r" { advance(); continue }
            return
        }
    }

    // MARK: - Keys

    private mutating func keyPath() throws(Failure) -> [String] {
        var parts = [try simpleKey()]
        while true {
            skipSpaces()
            guard current == "." else { return parts }
            advance()
            skipSpaces()
            parts.append(try simpleKey())
            if parts.count > 16 { throw fail("key nested deeper than 16") }
        }
    }

    private mutating func simpleKey() throws(Failure) -> String {
        switch current {
        case "\"": return try basicString()
        case "'": return try literalString()
        default:
            var key = ""
            while let c = current, c.isASCII, c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" {
                key.unicodeScalars.append(c)
                advance()
            }
            guard !key.isEmpty else { throw fail(atEnd ? "expected a key, found the end" : "expected a key, found '\(current!.escaped(asASCII: true))'") }
            return key
        }
    }

    // MARK: - Values

    private mutating func value(depth: Int) throws(Failure) -> TOMLValue {
        guard let c = current else { throw fail("expected a value, found the end") }
        switch c {
        case "\"":
            if peek(1) == "\"", peek(2) == "\"" { return .string(try multilineBasicString()) }
            return .string(try basicString())
        case "'":
            if peek(1) == "'", peek(2) == "'" { return .string(try multilineLiteralString()) }
            return .string(try literalString())
        case "[":
            guard depth < 32 else { throw fail("arrays nested deeper than 32") }
            advance()
            var items: [TOMLValue] = []
            while true {
                skipArraySpace()
                if current == "]" { advance(); return .array(items) }
                items.append(try value(depth: depth + 1))
                skipArraySpace()
                if current == "," { advance(); continue }
                guard current == "]" else { throw fail("expected , or ] in the array") }
                advance()
                return .array(items)
            }
        case "{": throw fail("inline tables ({...}) are not supported: use a [section]")
        case "t", "f":
            let word = self.word()
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            throw fail("'\(word.prefix(40))' is not a value (strings need quotes)")
        default:
            return try number()
        }
    }

    /// The run of characters that can make up a bare value.
    private mutating func word() -> String {
        var w = ""
        while let c = current, c.isASCII, c.properties.isAlphabetic || ("0"..."9").contains(c) || "+-._:".unicodeScalars.contains(c) {
            w.unicodeScalars.append(c)
            advance()
            if w.unicodeScalars.count > 400 { break }
        }
        return w
    }

    private mutating func number() throws(Failure) -> TOMLValue {
        let text = word()
        guard !text.isEmpty else { throw fail("expected a value, found '\(current!.escaped(asASCII: true))'") }
        func bad() -> Failure { fail("'\(text.prefix(40))' is not a number, string, boolean or array") }
        if text.contains(":") || (text.count >= 10 && text.dropFirst(4).first == "-" && text.first?.isNumber == true) {
            throw fail("dates and times are not supported")
        }
        var body = Substring(text)
        var sign = ""
        if let first = body.first, first == "+" || first == "-" {
            sign = String(first)
            body = body.dropFirst()
        }
        if body == "inf" { return .float(sign == "-" ? -.infinity : .infinity) }
        if body == "nan" { return .float(.nan) }
        // Underscores only between digits.
        let chars = Array(body)
        for (k, ch) in chars.enumerated() where ch == "_" {
            guard k > 0, k + 1 < chars.count, chars[k - 1].isHexDigit, chars[k + 1].isHexDigit else { throw bad() }
        }
        let digits = body.replacingOccurrences(of: "_", with: "")
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            guard sign.isEmpty, let v = Int(digits.dropFirst(2), radix: radix), !digits.dropFirst(2).hasPrefix("-"), !digits.dropFirst(2).hasPrefix("+") else { throw bad() }
            return .integer(v)
        }
        guard digits.first?.isNumber == true else { throw bad() }
        // No leading zeros (TOML), except a lone 0 or a fraction/exponent after it.
        if digits.count > 1, digits.first == "0", let second = digits.dropFirst().first, second.isNumber { throw bad() }
        if digits.allSatisfy(\.isNumber) {
            guard let v = Int(sign + digits) else { throw fail("'\(text.prefix(40))' is outside the integer range") }
            return .integer(v)
        }
        // A float: digits, then a fraction and/or an exponent, each with digits.
        let pattern = digits.unicodeScalars
        var k = pattern.startIndex
        func run() -> Int {
            var n = 0
            while k < pattern.endIndex, ("0"..."9").contains(pattern[k]) { k = pattern.index(after: k); n += 1 }
            return n
        }
        _ = run()
        var shaped = true
        if k < pattern.endIndex, pattern[k] == "." {
            k = pattern.index(after: k)
            shaped = run() > 0
        }
        if shaped, k < pattern.endIndex, pattern[k] == "e" || pattern[k] == "E" {
            k = pattern.index(after: k)
            if k < pattern.endIndex, pattern[k] == "+" || pattern[k] == "-" { k = pattern.index(after: k) }
            shaped = run() > 0
        }
        guard shaped, k == pattern.endIndex, let v = Double(sign + digits) else { throw bad() }
        return .float(v)
    }

    // MARK: - Strings

    private mutating func basicString() throws(Failure) -> String {
        advance()  // "
        var out = ""
        while true {
            guard let c = current, c != "\n" else { throw fail("unterminated string") }
            advance()
            if c == "\"" { return out }
            if c == "\\" { try escape(into: &out) } else { try append(c, to: &out) }
        }
    }

    private mutating func multilineBasicString() throws(Failure) -> String {
        advance(); advance(); advance()
        if current == "\n" { advance() } else if current == "\r", peek(1) == "\n" { advance(); advance() }
        var out = ""
        while true {
            guard let c = current else { throw fail("unterminated multi-line string") }
            if c == "\"", peek(1) == "\"", peek(2) == "\"" {
                advance(); advance(); advance()
                // Up to two more quotes belong to the string.
                for _ in 0..<2 where current == "\"" { out += "\""; advance() }
                return out
            }
            advance()
            if c == "\\" {
                // A backslash at the end of a line trims the newline and the whitespace after it.
                var j = i
                while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
                if j < s.count, s[j] == "\n" || s[j] == "\r" {
                    while let w = current, w == " " || w == "\t" || w == "\n" || w == "\r" { advance() }
                    continue
                }
                try escape(into: &out)
            } else if c == "\n" || c == "\r" || c == "\t" {
                out.unicodeScalars.append(c)
            } else {
                try append(c, to: &out)
            }
        }
    }

    private mutating func literalString() throws(Failure) -> String {
        advance()  // '
        var out = ""
        while true {
            guard let c = current, c != "\n" else { throw fail("unterminated string") }
            advance()
            if c == "'" { return out }
            try append(c, to: &out)
        }
    }

    private mutating func multilineLiteralString() throws(Failure) -> String {
        advance(); advance(); advance()
        if current == "\n" { advance() } else if current == "\r", peek(1) == "\n" { advance(); advance() }
        var out = ""
        while true {
            guard let c = current else { throw fail("unterminated multi-line string") }
            if c == "'", peek(1) == "'", peek(2) == "'" {
                advance(); advance(); advance()
                for _ in 0..<2 where current == "'" { out += "'"; advance() }
                return out
            }
            advance()
            if c == "\n" || c == "\r" || c == "\t" { out.unicodeScalars.append(c) } else { try append(c, to: &out) }
        }
    }

    /// Control characters other than tab must be escaped in TOML strings.
    private func append(_ c: Unicode.Scalar, to out: inout String) throws(Failure) {
        if (c.value < 0x20 && c != "\t") || c.value == 0x7f { throw fail("control character U+\(String(c.value, radix: 16)) in a string (escape it)") }
        out.unicodeScalars.append(c)
    }

    private mutating func escape(into out: inout String) throws(Failure) {
        guard let e = current else { throw fail("unterminated string") }
        advance()
        switch e {
        case "\"": out += "\""
        case "\\": out += "\\"
        case "n": out += "\n"
        case "t": out += "\t"
        case "r": out += "\r"
        case "b": out += "\u{8}"
        case "f": out += "\u{c}"
        case "u", "U":
            let count = e == "u" ? 4 : 8
            var hex = ""
            for _ in 0..<count {
                guard let h = current, h.isASCII, Character(h).isHexDigit else { throw fail("\\\(e) needs \(count) hexadecimal digits") }
                hex.unicodeScalars.append(h)
                advance()
            }
            guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else { throw fail("\\\(e)\(hex) is not a Unicode scalar value") }
            out.unicodeScalars.append(scalar)
        default:
            throw fail("unknown escape \\\(e.escaped(asASCII: true))")
        }
    }
}

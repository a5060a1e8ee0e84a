import DaemonRuntime
import Foundation
import Testing

@Suite("TOML reader: the config subset, strict, errors instead of crashes")
struct TOMLReaderTests {
    static func value(_ text: String, _ path: String...) throws -> TOMLValue? {
        var table = try TOMLReader.parse(text)
        for (i, key) in path.enumerated() {
            guard let v = table.first(where: { $0.key == key })?.value else { return nil }
            if i == path.count - 1 { return v }
            guard case .table(let sub) = v else { return nil }
            table = sub
        }
        return nil
    }

    @Test("values of every supported kind, with comments, dotted keys, quoted keys and arrays over lines")
    func supported() throws {
        let text = #"""
            # comment
            a = 1_000   # trailing comment
            b = -0.5e-3
            c = +inf
            d = nan
            e = 0x1F
            f = 0o17
            g = 0b101
            h = true
            s = "tab\there \"q\" \u00e9 \U0001F600"
            l = 'C:\path'
            m = """
            two\
               lines"""
            n = '''
            raw \n'''
            [x.y]
            "quoted key" = "v"
            arr = [
              "one", # first
              'two',
            ]
            dotted.key = 3
            """#
        #expect(try Self.value(text, "a") == .integer(1000))
        #expect(try Self.value(text, "b") == .float(-0.0005))
        #expect(try Self.value(text, "c") == .float(.infinity))
        if case .float(let d) = try Self.value(text, "d") { #expect(d.isNaN) } else { Issue.record("nan") }
        #expect(try Self.value(text, "e") == .integer(31))
        #expect(try Self.value(text, "f") == .integer(15))
        #expect(try Self.value(text, "g") == .integer(5))
        #expect(try Self.value(text, "h") == .bool(true))
        #expect(try Self.value(text, "s") == .string("tab\there \"q\" é 😀"))
        #expect(try Self.value(text, "l") == .string("C:\\path"))
        #expect(try Self.value(text, "m") == .string("twolines"))
        #expect(try Self.value(text, "n") == .string("raw \\n"))
        #expect(try Self.value(text, "x", "y", "quoted key") == .string("v"))
        #expect(try Self.value(text, "x", "y", "arr") == .array([.string("one"), .string("two")]))
        #expect(try Self.value(text, "x", "y", "dotted", "key") == .integer(3))
    }

    @Test("malformed or unsupported input is an error naming the line, never a crash", arguments: [
        "[)x]\n", "a = [}\n", "a = {b = 1}\n", "[[t]]\n", "d = 1979-05-27\n", "t = 07:32:00\n", "a = 1\na = 2\n",
        "[s]\n[s]\n", "a = \"open\n", "a = '''never closed", "a = 01\n", "a = 1__0\n", "a = _1\n", "a = 1.\n", "a = .5\n",
        "a = 1e\n", "a = 0x\n", "a = -0x1\n", "a = 99999999999999999999\n", "a = \"\\q\"\n", "a = \"\\u12\"\n", "a = \"\\uD800\"\n",
        "a = tru\n", "a = 1 2\n", "= 1\n", "a\n", "a = [1,,2]\n", "a = [\n", "a.b = 1\na = 2\n", "a = 1\na.b = 2\n",
        "a = \"\u{1}\"\n", String(repeating: "[", count: 100), "a = " + String(repeating: "[", count: 100) + "\n", "a = 1\r\rb = 2\n",
    ])
    func malformed(text: String) {
        #expect(throws: TOMLReader.Failure.self) { try TOMLReader.parse(text) }
    }

    @Test("a value with a newline, quotes and control characters prints as TOML that loads back the same")
    func roundTrip() throws {
        var c = DaemonConfig()
        c.stateDir = "multi\nline \"quoted\" back\\slash \u{1} tab\t"
        c.watch = ["/srv/été", "/a'b"]
        #expect(try DaemonConfig.load(toml: c.toml(), origin: "round trip") == c)
    }
}

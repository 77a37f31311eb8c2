import Testing
@testable import HBONEConfig

/// The flat YAML tree that replaced Yams' node tree: the shapes, styles and failures the config
/// loaders rely on.
@Suite struct YAMLTreeTests {
    static func root(_ yaml: String) throws -> YAMLReader {
        let documents = try YAMLReader.documents(yaml: yaml, file: "t.yaml")
        return try #require(documents.first)
    }

    @Test func mappingsListsAndScalarsKeepOrderAndLines() throws {
        let r = try Self.root("""
        a: 1
        b:
          - x
          - "y"
          - {c: 'z'}
        d: |
          text
        e: end
        """)
        let m = try r.mapping()
        #expect(m.map(\.key) == ["a", "b", "d", "e"])
        #expect(try m[0].value.int(in: 0...9) == 1)
        let items = try m[1].value.sequence()
        #expect(items.count == 3)
        #expect(try items[0].string() == "x")
        #expect(!items[0].isQuoted && items[1].isQuoted)
        #expect(items[1].line == 4)
        #expect(items[2].path == "b[2]")
        let inner = try items[2].mapping()
        #expect(inner[0].value.path == "b[2].c")
        #expect(try inner[0].value.string() == "z" && inner[0].value.isQuoted)
        #expect(try m[2].value.string() == "text\n")
    }

    @Test func nullsFollowTheCoreSchemaAndExplicitTags() throws {
        let m = try Self.root("""
        a:
        b: ~
        c: null
        d: "null"
        e: !!null x
        f: !!str null
        """).mapping()
        #expect(m.map(\.value.isNull) == [true, true, true, false, true, false])
        #expect(try m[0].value.sequence().isEmpty)
    }

    @Test func aliasesShareTheAnchoredNode() throws {
        let m = try Self.root("""
        base: &labels {app: web, version: v1}
        copy: *labels
        """).mapping()
        #expect(m[0].value.index == m[1].value.index)
        #expect(try m[1].value.fields(allowed: ["app", "version"])["app"]?.string() == "web")
    }

    @Test func anAliasInsideTheNodeItNamesIsRefused() {
        #expect(throws: ConfigError.self) { try YAMLReader.documents(yaml: "a: &x [1, *x]\n", file: "t.yaml") }
        #expect(throws: ConfigError.self) { try YAMLReader.documents(yaml: "a: *nowhere\n", file: "t.yaml") }
    }

    /// Nine levels of ten aliases each stand for a billion nodes: refused while reading, with the line.
    @Test func billionLaughsIsRefused() throws {
        var yaml = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            yaml += "l\(i): &l\(i) [" + Array(repeating: "*l\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        do {
            _ = try YAMLReader.documents(yaml: yaml, file: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.reason.contains("aliases expand"))
            #expect(error.line == 8)
        }
    }

    @Test func syntaxErrorsNameLineAndColumn() {
        do {
            _ = try YAMLReader.documents(yaml: "a: 1\nb: [2\nc: 3\n", file: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.file == "t.yaml")
            #expect(error.line != nil)
            #expect(error.reason.contains("column"))
        }
    }

    @Test func streamsHoldSeveralDocumentsAndTheConfigOnlyOne() throws {
        #expect(try YAMLReader.documents(yaml: "a: 1\n---\nb: 2\n", file: "t.yaml").count == 2)
        #expect(try YAMLReader.documents(yaml: "", file: "t.yaml").isEmpty)
        do {
            _ = try ProxyConfig.parse(yaml: "hbone: {}\n---\nworkloads: []\n", file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 3)
            #expect(error.reason.contains("one YAML document"))
        }
    }

    @Test func duplicateKeysAreFoundInSmallAndLargeMappings() {
        let small = "a: 1\nb: 2\na: 3\n"
        let large = (0..<100).map { "k\($0): 1\n" }.joined() + "k7: 2\n"
        for yaml in [small, large] {
            do {
                _ = try Self.root(yaml).mapping()
                Issue.record("accepted")
            } catch let error as ConfigError {
                #expect(error.reason == "duplicate key")
            } catch {
                Issue.record("\(error)")
            }
        }
    }
}

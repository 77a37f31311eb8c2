import CYaml

/// A YAML stream read by libyaml's event parser into one flat array of nodes.
///
/// Why not Yams' `Node`: a config with 100,000 workloads became about two million heap-allocated
/// nodes (each with its tag object, mark and style), and building and releasing them was most of the
/// load time and memory (issue 14). Here a node is one array element that holds its scalar text
/// inline (short strings need no allocation) and points at its children by index, so the whole
/// tree is two arrays. Aliases point at the anchored node instead of copying it.
final class YAMLTree: Sendable {
    enum Kind: UInt8, Sendable { case scalar, mapping, sequence }

    enum Style: UInt8, Sendable { case plain, singleQuoted, doubleQuoted, literal, folded }

    /// 24 bytes: the scalar text inline, the line, and the rest packed in one word, because a
    /// large config has millions of these.
    struct Node: Sendable {
        /// A scalar's text; empty for collections.
        let string: String
        /// 1-based line where the node starts.
        let line: Int32
        /// kind (2 bits), style (3), tag (2), then for a collection its number in `ranges`.
        fileprivate let bits: UInt32

        enum Tag: UInt8, Sendable { case none, null, other }

        /// The most collections one stream may hold (what is left of `bits`).
        static let maxCollections = 1 << 25

        fileprivate init(string: String, line: Int32, kind: Kind, style: Style = .plain, tag: Tag, collection: Int = 0) {
            self.string = string
            self.line = line
            bits = UInt32(kind.rawValue) | UInt32(style.rawValue) << 2 | UInt32(tag.rawValue) << 5 | UInt32(collection) << 7
        }

        var kind: Kind { Kind(rawValue: UInt8(bits & 3)) ?? .scalar }
        var style: Style { Style(rawValue: UInt8(bits >> 2 & 7)) ?? .plain }
        /// An explicit tag: `!!null` makes any scalar null, any other tag none.
        var tag: Tag { Tag(rawValue: UInt8(bits >> 5 & 3)) ?? .none }
        fileprivate var collection: Int { Int(bits >> 7) }
    }

    /// A stream's problem, with libyaml's own words.
    struct ParseError: Error, CustomStringConvertible {
        let line: Int?
        let description: String
    }

    let nodes: [Node]
    /// Each collection's children (a mapping's are key, value, key, value…) as a range of `children`.
    let ranges: [(first: Int32, count: Int32)]
    let children: [Int32]
    /// The root node of each document in the stream.
    let documents: [Int32]

    /// The most nodes the stream may stand for once aliases are expanded: a config that walks its
    /// tree must not be turned into a billion-node walk by nested aliases ("billion laughs").
    static let maxExpandedNodes = 50_000_000

    init(yaml text: String) throws(ParseError) {
        var builder = Builder()
        var text = text
        var failure: ParseError?
        // An empty stream has no documents (and no buffer to hand libyaml).
        if !text.isEmpty {
            text.withUTF8 { bytes in
                do throws(ParseError) { try builder.parse(bytes) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        nodes = builder.nodes
        ranges = builder.ranges
        children = builder.children
        documents = builder.documents
    }

    @inline(__always) func node(_ index: Int32) -> Node { nodes[Int(index)] }

    /// The children of a collection, by index.
    @inline(__always) func children(of index: Int32) -> ArraySlice<Int32> {
        let n = nodes[Int(index)]
        guard n.kind != .scalar else { return [] }
        let r = ranges[n.collection]
        return children[Int(r.first)..<Int(r.first + r.count)]
    }
}

extension YAMLTree {
    /// Turns libyaml events into the flat tree: each open collection collects its children's
    /// indexes on a stack and copies them to `children` when it ends.
    private struct Builder {
        var nodes: [Node] = []
        var ranges: [(first: Int32, count: Int32)] = []
        var children: [Int32] = []
        var documents: [Int32] = []
        /// Open collections: the node's index, the stack depth where its children start.
        var open: [(node: Int32, start: Int)] = []
        var pending: [Int32] = []
        var anchors: [String: Int32] = [:]
        /// Nodes each node stands for with aliases expanded, for the billion-laughs bound.
        var expanded: [Int32] = []

        mutating func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(ParseError) {
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { throw ParseError(line: nil, description: "out of memory") }
            defer { yaml_parser_delete(&parser) }
            guard let base = bytes.baseAddress else { return }
            yaml_parser_set_input_string(&parser, base, bytes.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.error(parser) }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { break }
                try handle(event)
            }
        }

        static func error(_ parser: yaml_parser_t) -> ParseError {
            let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
            var text = problem
            if let context = parser.context.map({ String(cString: $0) }) { text = "\(context): \(problem)" }
            let mark = parser.problem_mark
            let line = Int(mark.line) + 1
            return ParseError(line: line, description: "\(text) (line \(line), column \(Int(mark.column) + 1))")
        }

        static func string(_ pointer: UnsafeMutablePointer<UInt8>?, _ length: Int) -> String {
            guard let pointer, length > 0 else { return "" }
            return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
        }

        static func cString(_ pointer: UnsafeMutablePointer<UInt8>?) -> String? {
            pointer.map { String(cString: $0) }
        }

        static func tag(_ pointer: UnsafeMutablePointer<UInt8>?) -> Node.Tag {
            guard let tag = cString(pointer) else { return .none }
            return tag == "tag:yaml.org,2002:null" ? .null : .other
        }

        mutating func add(_ node: Node, anchor: UnsafeMutablePointer<UInt8>?) throws(ParseError) -> Int32 {
            guard nodes.count < Int32.max else { throw ParseError(line: Int(node.line), description: "too many YAML nodes") }
            let index = Int32(nodes.count)
            nodes.append(node)
            expanded.append(1)
            if let name = Self.cString(anchor) { anchors[name] = index }
            return index
        }

        mutating func attach(_ index: Int32) {
            if open.isEmpty { documents.append(index) } else { pending.append(index) }
        }

        mutating func handle(_ event: yaml_event_t) throws(ParseError) {
            let line = Int32(clamping: Int(event.start_mark.line) + 1)
            switch event.type {
            case YAML_DOCUMENT_START_EVENT:
                anchors.removeAll(keepingCapacity: true)
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let style: Style
                switch s.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: style = .literal
                case YAML_FOLDED_SCALAR_STYLE: style = .folded
                default: style = .plain
                }
                let node = Node(string: Self.string(s.value, s.length), line: line, kind: .scalar, style: style, tag: Self.tag(s.tag))
                attach(try add(node, anchor: s.anchor))
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
                let tag = isMapping ? event.data.mapping_start.tag : event.data.sequence_start.tag
                guard ranges.count < Node.maxCollections else { throw ParseError(line: Int(line), description: "too many YAML collections") }
                let node = Node(string: "", line: line, kind: isMapping ? .mapping : .sequence, tag: Self.tag(tag), collection: ranges.count)
                ranges.append((0, 0))
                let index = try add(node, anchor: anchor)
                // Not yet expandable: an alias inside the collection it names would make a cycle.
                expanded[Int(index)] = 0
                // Attached now so the parent's order is the document's; filled in at the end event.
                attach(index)
                open.append((index, pending.count))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let (index, start) = open.popLast() else { break }
                let count = pending.count - start
                let first = children.count
                guard first + count < Int32.max else { throw ParseError(line: Int(line), description: "too many YAML nodes") }
                var total = 1
                for child in pending[start...] { total += Int(expanded[Int(child)]) }
                guard total <= YAMLTree.maxExpandedNodes else {
                    throw ParseError(line: Int(nodes[Int(index)].line), description: "aliases expand to more than \(YAMLTree.maxExpandedNodes) nodes")
                }
                expanded[Int(index)] = Int32(total)
                children.append(contentsOf: pending[start...])
                pending.removeSubrange(start...)
                ranges[nodes[Int(index)].collection] = (Int32(first), Int32(count))
            case YAML_ALIAS_EVENT:
                let name = Self.cString(event.data.alias.anchor) ?? ""
                guard let target = anchors[name] else {
                    throw ParseError(line: Int(line), description: "unknown alias *\(name) (line \(line))")
                }
                guard expanded[Int(target)] > 0 else {
                    throw ParseError(line: Int(line), description: "alias *\(name) is inside the node it names (line \(line))")
                }
                attach(target)
            default:
                break
            }
        }
    }
}

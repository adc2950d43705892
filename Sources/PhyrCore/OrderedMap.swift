// SPDX-License-Identifier: MIT
/// An ordered map from `UInt64` keys to `Int64` values with O(log n) expected
/// cost per operation: a treap whose nodes live in one array, so the map is a
/// plain value with no per-node allocation or reference counting.
///
/// The standard library has no ordered map, and the pin table needs one whose
/// cost grows with the number of live ranges, never with bytes.
package struct OrderedMap {
    private struct Node {
        package var key: UInt64
        package var value: Int64
        package var priority: UInt64
        package var left: Int32
        package var right: Int32
    }

    private static let none: Int32 = -1
    private var nodes: ContiguousArray<Node> = []
    private var freeSlots: [Int32] = []
    private var root: Int32 = OrderedMap.none
    private var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    package private(set) var count = 0

    package init() {}

    // MARK: queries

    package subscript(key: UInt64) -> Int64? {
        var t = root
        while t != Self.none {
            let n = nodes[Int(t)]
            if key == n.key { return n.value }
            t = key < n.key ? n.left : n.right
        }
        return nil
    }

    /// The entry with the greatest key `<= key`.
    package func floor(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        var best: (key: UInt64, value: Int64)?
        var t = root
        while t != Self.none {
            let n = nodes[Int(t)]
            if n.key == key { return (n.key, n.value) }
            if n.key < key { best = (n.key, n.value); t = n.right } else { t = n.left }
        }
        return best
    }

    /// The entry with the greatest key `< key`.
    package func lower(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        var best: (key: UInt64, value: Int64)?
        var t = root
        while t != Self.none {
            let n = nodes[Int(t)]
            if n.key < key { best = (n.key, n.value); t = n.right } else { t = n.left }
        }
        return best
    }

    /// The entry with the least key `> key`.
    package func higher(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        var best: (key: UInt64, value: Int64)?
        var t = root
        while t != Self.none {
            let n = nodes[Int(t)]
            if n.key > key { best = (n.key, n.value); t = n.left } else { t = n.right }
        }
        return best
    }

    /// All entries in key order (for tests and diagnostics).
    package var entries: [(key: UInt64, value: Int64)] {
        var out: [(key: UInt64, value: Int64)] = []
        out.reserveCapacity(count)
        var stack: [Int32] = []
        var t = root
        while t != Self.none || !stack.isEmpty {
            while t != Self.none { stack.append(t); t = nodes[Int(t)].left }
            guard let top = stack.popLast() else { break }
            out.append((nodes[Int(top)].key, nodes[Int(top)].value))
            t = nodes[Int(top)].right
        }
        return out
    }

    // MARK: updates

    /// Sets the value of `key`, inserting it if absent.
    package mutating func set(_ key: UInt64, _ value: Int64) {
        var t = root
        while t != Self.none {
            if nodes[Int(t)].key == key { nodes[Int(t)].value = value; return }
            t = key < nodes[Int(t)].key ? nodes[Int(t)].left : nodes[Int(t)].right
        }
        let node = allocate(key, value)
        let (l, r) = split(root, key)
        root = merge(merge(l, node), r)
        count += 1
    }

    /// Removes `key`; returns whether it was present.
    @discardableResult
    package mutating func remove(_ key: UInt64) -> Bool {
        guard self[key] != nil else { return false }
        root = erase(root, key)
        count -= 1
        return true
    }

    // MARK: treap internals

    private mutating func allocate(_ key: UInt64, _ value: Int64) -> Int32 {
        // xorshift64*: priorities only need to be independent of the keys.
        seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27
        let node = Node(key: key, value: value, priority: seed &* 0x2545_F491_4F6C_DD1D,
                        left: Self.none, right: Self.none)
        if let slot = freeSlots.popLast() {
            nodes[Int(slot)] = node
            return slot
        }
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    /// Splits `t` into keys `< key` and keys `>= key`.
    private mutating func split(_ t: Int32, _ key: UInt64) -> (Int32, Int32) {
        if t == Self.none { return (Self.none, Self.none) }
        if nodes[Int(t)].key < key {
            let (l, r) = split(nodes[Int(t)].right, key)
            nodes[Int(t)].right = l
            return (t, r)
        } else {
            let (l, r) = split(nodes[Int(t)].left, key)
            nodes[Int(t)].left = r
            return (l, t)
        }
    }

    /// Joins `l` and `r`, every key of `l` being less than every key of `r`.
    private mutating func merge(_ l: Int32, _ r: Int32) -> Int32 {
        if l == Self.none { return r }
        if r == Self.none { return l }
        if nodes[Int(l)].priority > nodes[Int(r)].priority {
            nodes[Int(l)].right = merge(nodes[Int(l)].right, r)
            return l
        } else {
            nodes[Int(r)].left = merge(l, nodes[Int(r)].left)
            return r
        }
    }

    private mutating func erase(_ t: Int32, _ key: UInt64) -> Int32 {
        if t == Self.none { return t }
        let k = nodes[Int(t)].key
        if key == k {
            let joined = merge(nodes[Int(t)].left, nodes[Int(t)].right)
            freeSlots.append(t)
            return joined
        }
        if key < k {
            nodes[Int(t)].left = erase(nodes[Int(t)].left, key)
        } else {
            nodes[Int(t)].right = erase(nodes[Int(t)].right, key)
        }
        return t
    }
}

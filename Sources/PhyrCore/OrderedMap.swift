// SPDX-License-Identifier: MIT
/// An ordered map from `UInt64` keys to `Int64` values: sorted blocks of up
/// to 64 entries, found by a binary search over each block's first key.  A
/// lookup touches two small sorted arrays; an insertion moves at most one
/// block's entries (and, when a block splits, the list of first keys).  The
/// blocks live in one array, so the map is a plain value with no per-node
/// allocation or reference counting, and it stays fast where a tree of
/// nodes would miss the cache at every level: the pin table keeps two
/// boundaries per live range, 200,000 of them at 100,000 ranges.
///
/// Positions name entries between mutations; `position(atOrAfter:)` and
/// the walking functions let a caller update a run of entries with one
/// search.
package struct OrderedMap {
    package struct Entry: Equatable {
        package var key: UInt64
        package var value: Int64
    }

    /// An entry's place: logical block and index in it.  `endPosition` is
    /// one past the last entry.  Valid until the map changes.
    package struct Position: Equatable {
        fileprivate var block: Int
        fileprivate var index: Int
    }

    private static let width = 64
    /// Physical blocks of `width` entries each; a block's live entries are
    /// the first `counts[block]`.
    private var slots = ContiguousArray<Entry>()
    private var counts: [Int] = []
    /// Logical order of the physical blocks in use, and each one's first key.
    private var order: [Int] = []
    private var firsts: [UInt64] = []
    /// Physical blocks no longer in use.
    private var spare: [Int] = []
    package private(set) var count = 0

    package init() {}

    // MARK: positions

    package var endPosition: Position { Position(block: order.count, index: 0) }

    package func isEnd(_ p: Position) -> Bool { p.block >= order.count }

    /// The first entry with a key `>= key`, or `endPosition`.
    package func position(atOrAfter key: UInt64) -> Position {
        var lo = 0, hi = firsts.count
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if firsts[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return Position(block: 0, index: 0) }
        let b = lo - 1
        let base = order[b] * Self.width, n = counts[order[b]]
        var l = 0, h = n
        while l < h {
            let m = (l &+ h) >> 1
            if slots[base + m].key < key { l = m + 1 } else { h = m }
        }
        return l == n ? Position(block: b + 1, index: 0) : Position(block: b, index: l)
    }

    /// The entry at `p`, which is not the end.
    package func entry(at p: Position) -> Entry { slots[order[p.block] * Self.width + p.index] }

    package mutating func setValue(_ value: Int64, at p: Position) {
        slots[order[p.block] * Self.width + p.index].value = value
    }

    package func after(_ p: Position) -> Position {
        p.index + 1 < counts[order[p.block]] ? Position(block: p.block, index: p.index + 1)
            : Position(block: p.block + 1, index: 0)
    }

    /// The position before `p` (which may be the end); nil at the first entry.
    package func before(_ p: Position) -> Position? {
        if p.index > 0 { return Position(block: p.block, index: p.index - 1) }
        guard p.block > 0 else { return nil }
        return Position(block: p.block - 1, index: counts[order[p.block - 1]] - 1)
    }

    /// Inserts `entry` just before `p`, where `p` is the position its key
    /// sorts at (`position(atOrAfter: entry.key)` with the key absent).
    /// Returns the new entry's position.
    @discardableResult
    package mutating func insert(_ entry: Entry, at p: Position) -> Position {
        count += 1
        if order.isEmpty {
            let pb = newBlock()
            order.append(pb)
            firsts.append(entry.key)
            slots[pb * Self.width] = entry
            counts[pb] = 1
            return Position(block: 0, index: 0)
        }
        var b = p.block, i = p.index
        // At the start of a block or at the end: the previous block takes it
        // at its end where it has room (appending in key order stays cheap).
        if i == 0 && b > 0 && counts[order[b - 1]] < Self.width {
            b -= 1
            i = counts[order[b]]
        } else if b == order.count {
            b -= 1
            i = counts[order[b]]
        }
        if counts[order[b]] == Self.width {
            split(b)
            let half = counts[order[b]]
            if i > half { b += 1; i -= half }
        }
        let pb = order[b], base = pb * Self.width, n = counts[pb]
        var j = n
        while j > i { slots[base + j] = slots[base + j - 1]; j -= 1 }
        slots[base + i] = entry
        counts[pb] = n + 1
        if i == 0 { firsts[b] = entry.key }
        return Position(block: b, index: i)
    }

    /// Removes the entry at `p`.
    package mutating func remove(at p: Position) {
        count -= 1
        let pb = order[p.block], base = pb * Self.width, n = counts[pb]
        var j = p.index
        while j + 1 < n { slots[base + j] = slots[base + j + 1]; j += 1 }
        counts[pb] = n - 1
        if n == 1 {
            order.remove(at: p.block)
            firsts.remove(at: p.block)
            spare.append(pb)
        } else if p.index == 0 {
            firsts[p.block] = slots[base].key
        }
    }

    private mutating func newBlock() -> Int {
        if let pb = spare.popLast() { return pb }
        slots.append(contentsOf: repeatElement(Entry(key: 0, value: 0), count: Self.width))
        counts.append(0)
        return counts.count - 1
    }

    /// Moves the upper half of full block `b` into a new block after it.
    private mutating func split(_ b: Int) {
        let from = order[b], to = newBlock()
        let keep = Self.width / 2, move = counts[from] - keep
        for k in 0..<move { slots[to * Self.width + k] = slots[from * Self.width + keep + k] }
        counts[from] = keep
        counts[to] = move
        order.insert(to, at: b + 1)
        firsts.insert(slots[to * Self.width].key, at: b + 1)
    }

    // MARK: queries

    package subscript(key: UInt64) -> Int64? {
        let p = position(atOrAfter: key)
        guard !isEnd(p) else { return nil }
        let e = entry(at: p)
        return e.key == key ? e.value : nil
    }

    /// The entry with the greatest key `<= key`.
    package func floor(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        let p = position(atOrAfter: key)
        if !isEnd(p), entry(at: p).key == key { return (key, entry(at: p).value) }
        return before(p).map { let e = entry(at: $0); return (e.key, e.value) }
    }

    /// The entry with the greatest key `< key`.
    package func lower(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        before(position(atOrAfter: key)).map { let e = entry(at: $0); return (e.key, e.value) }
    }

    /// The entry with the least key `> key`.
    package func higher(_ key: UInt64) -> (key: UInt64, value: Int64)? {
        var p = position(atOrAfter: key)
        if !isEnd(p), entry(at: p).key == key { p = after(p) }
        guard !isEnd(p) else { return nil }
        let e = entry(at: p)
        return (e.key, e.value)
    }

    /// All entries in key order (for tests and diagnostics).
    package var entries: [(key: UInt64, value: Int64)] {
        var out: [(key: UInt64, value: Int64)] = []
        out.reserveCapacity(count)
        for pb in order {
            for i in 0..<counts[pb] {
                let e = slots[pb * Self.width + i]
                out.append((e.key, e.value))
            }
        }
        return out
    }

    // MARK: updates by key

    /// Sets the value of `key`, inserting it if absent.
    package mutating func set(_ key: UInt64, _ value: Int64) {
        let p = position(atOrAfter: key)
        if !isEnd(p), entry(at: p).key == key {
            setValue(value, at: p)
        } else {
            insert(Entry(key: key, value: value), at: p)
        }
    }

    /// Removes `key`; returns whether it was present.
    @discardableResult
    package mutating func remove(_ key: UInt64) -> Bool {
        let p = position(atOrAfter: key)
        guard !isEnd(p), entry(at: p).key == key else { return false }
        remove(at: p)
        return true
    }
}

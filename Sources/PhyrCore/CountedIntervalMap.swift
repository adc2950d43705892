// SPDX-License-Identifier: MIT
/// How many live pins cover each address, kept as a step function: a boundary
/// address maps to the count that holds from it up to the next boundary.
///
/// Pins go in as intervals; what comes out is exactly the memory whose lock
/// state must change: `add` returns the pieces that went from 0 to 1 cover
/// (lock them), `remove` the pieces that went from 1 to 0 (unlock them).
/// The map keeps no boundary whose count equals its predecessor's, so its size
/// is at most two boundaries per live interval, whatever the bytes covered.
package struct CountedIntervalMap {
    private var steps = OrderedMap()

    package init() {}

    /// Number of boundaries held (at most twice the number of live intervals).
    package var boundaryCount: Int { steps.count }

    /// True when nothing is covered.
    package var isEmpty: Bool { steps.count == 0 }

    /// How many intervals cover `address`.
    package func coverage(at address: UInt64) -> Int64 {
        steps.floor(address)?.value ?? 0
    }

    /// The covered pieces with their counts, in address order.
    package var coveredRuns: [(range: Range<UInt64>, count: Int64)] {
        let e = steps.entries
        var out: [(range: Range<UInt64>, count: Int64)] = []
        for i in e.indices.dropLast() where e[i].value != 0 {
            out.append((e[i].key..<e[i + 1].key, e[i].value))
        }
        return out
    }

    /// Covers `interval` once more; returns the pieces that were uncovered.
    package mutating func add(_ interval: Range<UInt64>) -> [Range<UInt64>] {
        adjust(interval, by: 1, reporting: 0)
    }

    /// Uncovers `interval` once; returns the pieces no longer covered.
    /// Returns nil and changes nothing when part of `interval` is not covered:
    /// a caller removing what it never added is a bug, never a negative count.
    package mutating func remove(_ interval: Range<UInt64>) -> [Range<UInt64>]? {
        guard !interval.isEmpty else { return [] }
        var p = steps.position(atOrAfter: interval.lowerBound)
        if steps.isEnd(p) || steps.entry(at: p).key != interval.lowerBound {
            // The count at lo is the one before it.
            guard let q = steps.before(p), steps.entry(at: q).value >= 1 else { return nil }
        }
        while !steps.isEnd(p) {
            let e = steps.entry(at: p)
            guard e.key < interval.upperBound else { break }
            if e.value < 1 { return nil }
            p = steps.after(p)
        }
        return adjust(interval, by: -1, reporting: 1)
    }

    /// Adds `delta` to the count over `interval`, keeping no redundant
    /// boundary; returns the pieces whose count was `edge` before.  Two
    /// searches, then a walk over the boundaries inside the interval.
    private mutating func adjust(_ interval: Range<UInt64>, by delta: Int64,
                                 reporting edge: Int64) -> [Range<UInt64>] {
        guard !interval.isEmpty else { return [] }
        let lo = interval.lowerBound, hi = interval.upperBound
        var p = steps.position(atOrAfter: lo)
        let before = steps.before(p).map { steps.entry(at: $0).value } ?? 0
        if steps.isEnd(p) || steps.entry(at: p).key != lo {
            p = steps.insert(OrderedMap.Entry(key: lo, value: before), at: p)
        }
        var changed: [Range<UInt64>] = []
        var last: Int64 = before  // the count just below hi, before the change
        while true {
            let e = steps.entry(at: p)
            let next = steps.after(p)
            let end = steps.isEnd(next) ? hi : min(steps.entry(at: next).key, hi)
            if e.value == edge {
                if let l = changed.last, l.upperBound == e.key {
                    changed[changed.count - 1] = l.lowerBound..<end
                } else {
                    changed.append(e.key..<end)
                }
            }
            last = e.value
            steps.setValue(e.value + delta, at: p)
            if end == hi {
                // The boundary at hi: needed where the count past hi differs.
                if steps.isEnd(next) || steps.entry(at: next).key != hi {
                    steps.insert(OrderedMap.Entry(key: hi, value: last), at: next)
                } else if steps.entry(at: next).value == last + delta {
                    steps.remove(at: next)
                }
                break
            }
            p = next
        }
        // The boundary at lo: redundant where the count below lo is the same.
        let q = steps.position(atOrAfter: lo)
        if steps.entry(at: q).value == before { steps.remove(at: q) }
        return changed
    }
}

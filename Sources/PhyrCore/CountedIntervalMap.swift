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
        if coverage(at: interval.lowerBound) < 1 { return nil }
        var k = interval.lowerBound
        while let next = steps.higher(k), next.key < interval.upperBound {
            if next.value < 1 { return nil }
            k = next.key
        }
        return adjust(interval, by: -1, reporting: 1)
    }

    private mutating func adjust(_ interval: Range<UInt64>, by delta: Int64,
                                 reporting edge: Int64) -> [Range<UInt64>] {
        guard !interval.isEmpty else { return [] }
        let lo = interval.lowerBound, hi = interval.upperBound
        if steps[lo] == nil { steps.set(lo, coverage(at: lo)) }
        if steps[hi] == nil { steps.set(hi, coverage(at: hi)) }

        var changed: [Range<UInt64>] = []
        var k = lo
        var v = steps[lo] ?? 0
        while k < hi {
            guard let next = steps.higher(k) else { break }
            if v == edge {
                if let last = changed.last, last.upperBound == k {
                    changed[changed.count - 1] = last.lowerBound..<next.key
                } else {
                    changed.append(k..<next.key)
                }
            }
            steps.set(k, v + delta)
            k = next.key
            v = next.value
        }
        dropIfRedundant(lo)
        dropIfRedundant(hi)
        return changed
    }

    /// A boundary is redundant when the count does not change across it.
    private mutating func dropIfRedundant(_ key: UInt64) {
        guard let v = steps[key] else { return }
        let before = steps.lower(key)?.value ?? 0
        if v == before { steps.remove(key) }
    }
}

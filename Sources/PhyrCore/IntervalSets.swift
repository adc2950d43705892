// SPDX-License-Identifier: MIT
/// Arithmetic on sorted lists of disjoint intervals, and segments clipped
/// to a span: what the pin table and the pins compute locks with.
extension PinTable {
    package static func clip(_ segs: ContiguousArray<Segment>, to r: Range<UInt64>) -> ContiguousArray<Segment> {
        var out = ContiguousArray<Segment>()
        for s in segs {
            let lo = max(s.addr, r.lowerBound), hi = min(s.end, r.upperBound)
            guard lo < hi else { continue }
            let phys = s.phys == physUnknown ? physUnknown : s.phys + (lo - s.addr)
            out.append(Segment(addr: lo, len: hi - lo, phys: phys, pageShift: s.pageShift, flags: s.flags,
                               node: s.node))
        }
        return out
    }

    /// `a` and `b` together, both sorted lists of disjoint intervals.
    package static func union(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        for r in (a + b).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// `a` minus `b`, both sorted lists of disjoint intervals.
    package static func subtract(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var j = 0
        for r in a {
            var lo = r.lowerBound
            while j < b.count && b[j].upperBound <= lo { j += 1 }
            var k = j
            while lo < r.upperBound {
                guard k < b.count, b[k].lowerBound < r.upperBound else {
                    out.append(lo..<r.upperBound)
                    break
                }
                if b[k].lowerBound > lo { out.append(lo..<b[k].lowerBound) }
                lo = max(lo, b[k].upperBound)
                k += 1
            }
        }
        return out
    }

    /// The intersection of two sorted lists of disjoint intervals.
    package static func intersect(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        // The common cases, without making an array: one side empty, or
        // the one interval of `a` inside the one of `b`.
        if a.isEmpty || b.isEmpty { return [] }
        if a.count == 1, b.count == 1, !a[0].isEmpty,
           b[0].lowerBound <= a[0].lowerBound, a[0].upperBound <= b[0].upperBound { return a }
        var out: [Range<UInt64>] = []
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let lo = max(a[i].lowerBound, b[j].lowerBound), hi = min(a[i].upperBound, b[j].upperBound)
            if lo < hi { out.append(lo..<hi) }
            if a[i].upperBound < b[j].upperBound { i += 1 } else { j += 1 }
        }
        return out
    }
}

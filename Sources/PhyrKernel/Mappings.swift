// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore
import Synchronization

/// The VMAs under a span of addresses: PROCMAP_QUERY, one ioctl per VMA and
/// independent of how many mappings the process has; before 6.11, a parse of
/// /proc/self/maps (6.7 to 6.10, PAGEMAP_SCAN telling the backing) or of
/// /proc/self/smaps (before 6.7: the only other source of the page size and
/// VM_PFNMAP/VM_IO), read only as far as the span.  Each source is switched
/// off for good by the kernel's answer that it lacks it (ENOTTY), once.
package enum Mappings {
    /// PROCMAP_QUERY does not tell VM_PFNMAP/VM_IO mappings apart; PAGEMAP_SCAN
    /// does (it skips them), so only the two together can replace smaps.
    private static var useProcmapQuery: Bool {
        let f = KernelFeatures.shared
        return f.procmapQuery.load(ordering: .relaxed) && f.pagemapScan.load(ordering: .relaxed)
    }

    /// The mappings tiling a span (or the first hole in it), and where the
    /// next mapping after them starts (`following`): a pin needs both, and
    /// before 6.11 one read of maps (or smaps) as far as the span tells both.
    package struct Layout {
        package var tiling: Tiling
        /// The start of the first VMA at or after the last mapping's end:
        /// .some(nil) when nothing is mapped after it, nil when not known.
        package var following: UInt64??
        package var source: Source
    }

    package enum Source {
        case procmapQuery
        /// 6.7 to 6.10: text read as far as the span, bounds and permissions only.
        case maps
        /// Before 6.7: per-VMA huge page totals too, which faulting in changes.
        case smaps
    }

    package static func layout(_ span: Range<UInt64>) throws(Errno) -> Layout {
        if useProcmapQuery {
            do {
                return Layout(tiling: try ProcmapQuery.tiling(span), following: nil, source: .procmapQuery)
            } catch .ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
            }
        }
        if KernelFeatures.shared.pagemapScan.load(ordering: .relaxed) { return try layoutFromMaps(span) }
        var all: [Mapping] = []
        let following = try Smaps.read(from: span.lowerBound, to: span.upperBound) { all.append($0.mapping); return true }
        return Layout(tiling: MapsText.tiling(all[...], span), following: .some(following), source: .smaps)
    }

    /// The mappings tiling `span`, or its first hole.
    package static func covering(_ span: Range<UInt64>) throws(Errno) -> Tiling {
        try layout(span).tiling
    }

    /// The mappings tiling each of `spans`, for many spans at the cost of one:
    /// one PROCMAP_QUERY walk per span, or before 6.11 a single read of
    /// /proc/self/maps as far as the last span (permissions and bounds only:
    /// what checking a registration's ranges needs).  Read span by span, a
    /// registration of thousands of ranges would read the file thousands of
    /// times.
    package static func covering(each spans: [Range<UInt64>]) throws(Errno) -> [Tiling] {
        guard !spans.isEmpty else { return [] }
        if useProcmapQuery {
            do {
                var out: [Tiling] = []
                for span in spans { out.append(try ProcmapQuery.tiling(span)) }
                return out
            } catch .ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
            }
        }
        let low = spans.map { $0.lowerBound }.min() ?? 0
        let high = spans.map { $0.upperBound }.max() ?? 0
        let all = try mapsBetween(low, high).mappings
        return spans.map { span in
            MapsText.tiling(all[firstEnding(after: span.lowerBound, in: all) { $0.end }...], span)
        }
    }

    /// The VMAs that meet `span`, from /proc/self/maps read only as far as the
    /// span: bounds, permissions, file.  What maps does not say, PAGEMAP_SCAN
    /// does (VM_PFNMAP VMAs are the holes in its answer), or the hugetlb page
    /// size probe does.
    package static func fromMaps(_ span: Range<UInt64>) throws(Errno) -> Tiling {
        try layoutFromMaps(span).tiling
    }

    /// The VMAs that meet `span`, from /proc/self/smaps.
    package static func fromSmaps(_ span: Range<UInt64>) throws(Errno) -> Tiling {
        var all: [Mapping] = []
        _ = try Smaps.read(from: span.lowerBound, to: span.upperBound) { all.append($0.mapping); return true }
        return MapsText.tiling(all[...], span)
    }

    private static func layoutFromMaps(_ span: Range<UInt64>) throws(Errno) -> Layout {
        let found = try mapsBetween(span.lowerBound, span.upperBound)
        var all = found.mappings
        for i in all.indices where all[i].fileBacked {
            all[i].pageSize = SystemSettings.hugetlbPageSize(all[i]) ?? basePageSize
        }
        return Layout(tiling: MapsText.tiling(all[...], span), following: .some(found.following), source: .maps)
    }

    /// The VMAs of /proc/self/maps that end past `low` and start before
    /// `high`, read no further, and the start of the first VMA at or after
    /// `high` (nil: none).
    private static func mapsBetween(_ low: UInt64, _ high: UInt64) throws(Errno)
        -> (mappings: [Mapping], following: UInt64?) {
        var all: [Mapping] = []
        var following: UInt64?
        try forEachLine("/proc/self/maps") { line in
            guard let (start, end) = MapsText.bounds(line) else { return true }
            guard end > low else { return true }
            guard start < high else {
                following = start
                return false
            }
            if let m = MapsText.mapping(line) { all.append(m) }
            return true
        }
        return (all, following)
    }

    /// The parts of `span` that are mapped, holes allowed: for unlocking
    /// mapping by mapping, since munlock(2) stops at the first hole.  With
    /// `merged`, touching mappings come out as one part; without, one part
    /// per VMA (a VMA is locked or not as a whole).
    package static func mappedParts(_ span: Range<UInt64>, merged: Bool = true) throws(Errno) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        func add(_ lo: UInt64, _ hi: UInt64) {
            let a = max(lo, span.lowerBound), b = min(hi, span.upperBound)
            guard a < b else { return }
            if merged, let last = out.last, last.upperBound == a {
                out[out.count - 1] = last.lowerBound..<b
            } else {
                out.append(a..<b)
            }
        }
        if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed) {
            do {
                var addr = span.lowerBound
                while addr < span.upperBound, let vma = try ProcmapQuery.vma(atOrAfter: addr) {
                    add(vma.lowerBound, vma.upperBound)
                    addr = vma.upperBound
                }
                return out
            } catch .ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
                out = []
            }
        }
        try forEachLine("/proc/self/maps") { line in
            guard let (start, end) = MapsText.bounds(line) else { return true }
            if end > span.lowerBound && start < span.upperBound { add(start, end) }
            return end < span.upperBound
        }
        return out
    }

    /// The bounds of the VMA holding `address`, or of the first one after it;
    /// nil when there is none.  One PROCMAP_QUERY, or /proc/self/maps read
    /// only as far as `address`.
    package static func vma(atOrAfter address: UInt64) throws(Errno) -> Range<UInt64>? {
        if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed) {
            do { return try ProcmapQuery.vma(atOrAfter: address) } catch .ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
            }
        }
        var found: Range<UInt64>?
        try forEachLine("/proc/self/maps") { line in
            guard let (start, end) = MapsText.bounds(line), end > address else { return true }
            found = start..<end
            return false
        }
        return found
    }

    /// Every mapping that holds a lock with libphyr's mark (VM_LOCKED with the
    /// VM_LOCKONFAULT `Locker.lock` adds), wherever it is now, and its file:
    /// memory the caller moved with mremap(2) carries the mark along.  Reads
    /// all of /proc/self/smaps: only for repairs, never on a common path.
    package static func markedLocks() throws(Errno) -> [(span: Range<UInt64>, file: FileKey?)] {
        var out: [(span: Range<UInt64>, file: FileKey?)] = []
        _ = try Smaps.read { v in
            if LockMarks.isLibphyrLock(vmFlags: v.vmFlags) { out.append((v.mapping.start..<v.mapping.end, v.mapping.file)) }
            return true
        }
        return out
    }

    /// "mapping [start, end) name", for messages.
    package static func describe(_ m: Mapping) -> String {
        var name = m.name
        if name.isEmpty, let found = try? ProcmapQuery.name(of: m.start) { name = found }
        return "mapping \(spanText(m.start..<m.end))" + (name.isEmpty ? "" : " " + name)
    }
}

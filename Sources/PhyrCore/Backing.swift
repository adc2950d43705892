// SPDX-License-Identifier: MIT
/// How memory is backed, as pure values: what the kernel edge reports goes in,
/// segments and lock extents come out.  No syscalls here.

/// `PHYR_SEG_*`, checked against the header by the tests.
package struct SegmentFlags: OptionSet, Hashable, Sendable {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }
    package static let huge = SegmentFlags(rawValue: 0x1)
    package static let hugetlb = SegmentFlags(rawValue: 0x2)
    package static let shared = SegmentFlags(rawValue: 0x4)
    package static let noFolio = SegmentFlags(rawValue: 0x8)
}

package let basePageShift: UInt32 = 12
package let basePageSize: UInt64 = 1 << 12
/// A PMD-mapped transparent huge page on x86-64 and arm64 with 4 KiB pages.
package let pmdPageShift: UInt32 = 21
package let physUnknown = UInt64.max

@inline(__always) package func alignDown(_ x: UInt64, _ size: UInt64) -> UInt64 { x & ~(size &- 1) }
/// Rounds up; the caller guarantees `x + size - 1` does not overflow.
/// The first element of `sorted` (in address order, not overlapping) whose
/// end lies past `address`: a binary search.
package func firstEnding<C: RandomAccessCollection>(after address: UInt64, in sorted: C,
                                                    end: (C.Element) -> UInt64) -> C.Index {
    var lo = sorted.startIndex, hi = sorted.endIndex
    while lo < hi {
        let mid = sorted.index(lo, offsetBy: sorted.distance(from: lo, to: hi) / 2)
        if end(sorted[mid]) > address { hi = mid } else { lo = sorted.index(after: mid) }
    }
    return lo
}

@inline(__always) package func alignUp(_ x: UInt64, _ size: UInt64) -> UInt64 { (x &+ size &- 1) & ~(size &- 1) }

/// The file behind a mapping, as the kernel names it: the same memory
/// wherever it is mapped (shmem and shared anonymous memory have one too).
package struct FileKey: Hashable, Sendable {
    package var major: UInt32
    package var minor: UInt32
    package var inode: UInt64

    package init(major: UInt32, minor: UInt32, inode: UInt64) {
        self.major = major
        self.minor = minor
        self.inode = inode
    }
}

/// One VMA, as far as pinning cares.
package struct Mapping: Equatable, Sendable {
    package var start: UInt64
    package var end: UInt64
    package var readable: Bool
    package var writable: Bool
    package var shared: Bool
    /// The file behind it (page cache, shmem, hugetlbfs); nil for private
    /// anonymous memory.
    package var file: FileKey? = nil
    package var fileBacked: Bool { file != nil }
    /// The VMA's kernel page size: 4 KiB, or the hugetlb page size.
    package var pageSize: UInt64
    /// The mapping has no folios (VM_PFNMAP / VM_IO), when the source says so.
    package var noFolio: Bool
    /// Bytes of PMD-mapped huge pages in the VMA, when only smaps can tell
    /// where huge pages are (the fallback scanner); 0 otherwise.
    package var pmdMappedBytes: UInt64
    package var name: String
    /// The VMA's MADV_HUGEPAGE / MADV_NOHUGEPAGE, when the source says
    /// (smaps' VmFlags `hg` / `nh`); nil when it does not.
    package var hugepageAdvice: HugepageAdvice? = nil

    package var isHugetlb: Bool { pageSize > basePageSize }

    /// shmem, memfd, SysV and shared anonymous memory ("/dev/zero (deleted)"),
    /// told from a regular file's page cache by name, which is all maps
    /// says: files the kernel can long-term pin (no writeback), and whose
    /// THP shmem_enabled governs.  A private /dev/zero mapping is anonymous.
    package var isShmem: Bool {
        guard fileBacked else { return false }
        return name.hasPrefix("/memfd:") || name.hasPrefix("/SYSV") || name.hasPrefix("/dev/shm/")
            || shared && name.hasPrefix("/dev/zero")
    }

    package init(start: UInt64, end: UInt64, readable: Bool, writable: Bool, shared: Bool, file: FileKey? = nil,
                 pageSize: UInt64, noFolio: Bool, pmdMappedBytes: UInt64, name: String,
                 hugepageAdvice: HugepageAdvice? = nil) {
        self.start = start
        self.end = end
        self.readable = readable
        self.writable = writable
        self.shared = shared
        self.file = file
        self.pageSize = pageSize
        self.noFolio = noFolio
        self.pmdMappedBytes = pmdMappedBytes
        self.name = name
        self.hugepageAdvice = hugepageAdvice
    }
}

package enum HugepageAdvice: Equatable, Sendable { case none, hugepage, noHugepage }

/// How transparent huge pages are enabled for anonymous memory
/// (/sys/kernel/mm/transparent_hugepage/enabled, and PR_SET_THP_DISABLE).
package enum THPMode: Equatable, Sendable { case always, madvise, never }

extension Mapping {
    /// Whether faulting in part `piece` of this mapping can map huge pages:
    /// anonymous memory the THP mode admits, with a whole aligned 2 MiB
    /// extent inside the mapping that meets the piece.  Unknown advice, or
    /// file memory (shmem and page-cache THP follow other settings), answers
    /// yes.
    package func faultingMayMapHugePages(_ piece: Range<UInt64>, mode: THPMode) -> Bool {
        if isHugetlb || noFolio { return false }
        guard !fileBacked, let advice = hugepageAdvice else { return true }
        switch (mode, advice) {
        case (.never, _), (_, .noHugepage), (.madvise, .none): return false
        default: break
        }
        let huge: UInt64 = 1 << UInt64(pmdPageShift)
        let lo = max(alignDown(piece.lowerBound, huge), alignUp(start, huge))
        let hi = min(alignUp(piece.upperBound, huge), alignDown(end, huge))
        return lo < hi
    }
}

/// One region PAGEMAP_SCAN reported (or the fallback reconstructed).
package struct ScanRegion: Equatable, Sendable {
    package var start: UInt64
    package var end: UInt64
    package var present: Bool
    package var huge: Bool
    package var file: Bool
    package var zeroPage: Bool

    package init(start: UInt64, end: UInt64, present: Bool, huge: Bool, file: Bool, zeroPage: Bool) {
        self.start = start
        self.end = end
        self.present = present
        self.huge = huge
        self.file = file
        self.zeroPage = zeroPage
    }
}

/// A run of uniformly backed memory; `phys` is the physical address of `start`
/// and the run is physically contiguous, or `phys == physUnknown`.
package struct BackingRun: Equatable, Sendable {
    package var start: UInt64
    package var end: UInt64
    package var pageShift: UInt32
    package var flags: SegmentFlags
    package var phys: UInt64 = physUnknown
    package var present: Bool = true
    package var zeroPage: Bool = false
    /// The NUMA node of the run's memory; `nodeUnknown` until asked, and for
    /// memory with no folio.
    package var node: Int32 = nodeUnknown

    package var pageSize: UInt64 { 1 << UInt64(pageShift) }

    package init(start: UInt64, end: UInt64, pageShift: UInt32, flags: SegmentFlags, phys: UInt64 = physUnknown,
                 present: Bool = true, zeroPage: Bool = false) {
        self.start = start
        self.end = end
        self.pageShift = pageShift
        self.flags = flags
        self.phys = phys
        self.present = present
        self.zeroPage = zeroPage
    }
}

extension Array where Element == BackingRun {
    /// Appends `piece`, or grows the last run by it where `piece` continues
    /// it: adjacent, the same page size, flags, presence and node, and
    /// physically too where both addresses are known.
    package mutating func appendMerging(_ piece: BackingRun) {
        if let last, last.end == piece.start, last.pageShift == piece.pageShift, last.flags == piece.flags,
           last.present == piece.present, last.zeroPage == piece.zeroPage, last.node == piece.node,
           last.phys == physUnknown
               ? piece.phys == physUnknown
               : piece.phys != physUnknown && last.phys &+ (last.end - last.start) == piece.phys {
            self[count - 1].end = piece.end
        } else {
            append(piece)
        }
    }
}

/// `struct phyr_seg` as a Swift value, with its NUMA node (phyr_seg_nodes).
package struct Segment: Equatable, Sendable {
    package var addr: UInt64
    package var len: UInt64
    package var phys: UInt64
    package var pageShift: UInt32
    package var flags: SegmentFlags
    package var node: Int32
    package var end: UInt64 { addr + len }

    package init(addr: UInt64, len: UInt64, phys: UInt64, pageShift: UInt32, flags: SegmentFlags,
                 node: Int32 = nodeUnknown) {
        self.addr = addr
        self.len = len
        self.phys = phys
        self.pageShift = pageShift
        self.flags = flags
        self.node = node
    }
}

/// A segment's node when no folio is behind it, or none was asked for.
package let nodeUnknown: Int32 = -1

package enum Backing {
    /// Turns scan regions over `span` into runs.  Addresses the scan did not
    /// report lie in VMAs it skips (VM_PFNMAP): memory with no folio.
    /// `mappings` must tile `span` in order.
    package static func classify(_ regions: [ScanRegion], span: Range<UInt64>,
                         mappings: [Mapping]) -> [BackingRun] {
        var runs: [BackingRun] = []
        var mi = 0
        var cursor = span.lowerBound
        func mappingIndex(for addr: UInt64) -> Int {
            while mi + 1 < mappings.count && mappings[mi].end <= addr { mi += 1 }
            return mi
        }
        func emitNoFolio(_ lo: UInt64, _ hi: UInt64) {
            var a = lo
            while a < hi {
                let m = mappings[mappingIndex(for: a)]
                let b = min(hi, max(m.end, a + basePageSize))
                var flags: SegmentFlags = .noFolio
                if m.shared { flags.insert(.shared) }
                runs.appendMerging(BackingRun(start: a, end: b, pageShift: basePageShift, flags: flags))
                a = b
            }
        }
        for r in regions {
            let lo = max(r.start, span.lowerBound), hi = min(r.end, span.upperBound)
            guard lo < hi, !mappings.isEmpty else { continue }
            if lo > cursor { emitNoFolio(cursor, lo) }
            // A region may cross VMAs of different kinds: cut it at each VMA.
            var a = lo
            while a < hi {
                let m = mappings[mappingIndex(for: a)]
                let b = min(hi, max(m.end, a + basePageSize))
                if m.noFolio {
                    emitNoFolio(a, b)
                } else {
                    var flags: SegmentFlags = []
                    var shift = basePageShift
                    if m.isHugetlb {
                        flags.formUnion([.huge, .hugetlb])
                        shift = UInt32(m.pageSize.trailingZeroBitCount)
                    } else if r.huge {
                        flags.insert(.huge)
                        shift = pmdPageShift
                    }
                    if m.shared || r.file { flags.insert(.shared) }
                    runs.appendMerging(BackingRun(start: a, end: b, pageShift: shift, flags: flags,
                                                  present: r.present, zeroPage: r.zeroPage))
                }
                a = b
            }
            cursor = hi
        }
        if cursor < span.upperBound, !mappings.isEmpty { emitNoFolio(cursor, span.upperBound) }
        return runs
    }

    /// The 2 MiB extents MADV_COLLAPSE may make huge for a pin of `range`
    /// (PHYR_PIN_HUGE), merged where adjacent in one mapping: every aligned
    /// extent that `range` meets, lies wholly in one mapping that can hold
    /// transparent huge pages (not hugetlb, not PFN-mapped, not
    /// MADV_NOHUGEPAGE where the source says), and is not huge-mapped now.
    /// An extent `range` only partly covers is still one extent of its
    /// mapping: the kernel collapses whole extents or nothing.  `runs` cover
    /// the page-aligned span of `range`; a PMD maps all of its extent, so a
    /// huge run anywhere in the extent means the whole of it is huge.  With
    /// `hugeKnown` false (pagemap without PFNs guesses huge pages), runs said
    /// to be huge exclude nothing: MADV_COLLAPSE of an extent that is huge
    /// already returns at once.
    package static func collapsible(_ runs: [BackingRun], mappings: [Mapping], range: Range<UInt64>,
                                    hugeKnown: Bool = true) -> [Range<UInt64>] {
        let huge: UInt64 = 1 << UInt64(pmdPageShift)
        var out: [Range<UInt64>] = []
        for m in mappings where !m.isHugetlb && !m.noFolio && m.hugepageAdvice != .noHugepage {
            let lo = max(alignDown(max(range.lowerBound, m.start), huge), alignUp(m.start, huge))
            let hi = min(alignUp(min(range.upperBound, m.end), huge), alignDown(m.end, huge))
            var e = lo
            var r = 0  // runs and extents are both in address order
            while e < hi {
                let extent = e..<(e + huge)
                e += huge
                while r < runs.count && runs[r].end <= extent.lowerBound { r += 1 }
                var isHuge = false, noFolio = false
                var i = r
                while i < runs.count && runs[i].start < extent.upperBound {
                    if runs[i].flags.contains(.noFolio) {
                        noFolio = true
                    } else if runs[i].pageShift >= pmdPageShift && hugeKnown {
                        isHuge = true
                    }
                    i += 1
                }
                guard !isHuge, !noFolio else { continue }
                if let last = out.last, last.upperBound == extent.lowerBound, extent.lowerBound > m.start {
                    out[out.count - 1] = last.lowerBound..<extent.upperBound
                } else {
                    out.append(extent)
                }
            }
        }
        return out
    }

    /// The interval a pin of `range` must lock: whole folios at both ends, so
    /// that locking never cuts a huge mapping.  `runs` cover `range`.
    package static func lockInterval(_ runs: [BackingRun], range: Range<UInt64>) -> Range<UInt64> {
        guard let first = runs.first, let last = runs.last else { return range }
        let lo = alignDown(range.lowerBound, first.flags.contains(.noFolio) ? basePageSize : first.pageSize)
        let hi = alignUp(range.upperBound, last.flags.contains(.noFolio) ? basePageSize : last.pageSize)
        return lo..<hi
    }

    /// The parts of `interval` that mlock must cover: everything with a folio
    /// except hugetlb memory, which is never swapped and which mlock ignores.
    /// With `hugetlb`, hugetlb memory too: the folio extents of a pin.
    package static func lockablePieces(_ runs: [BackingRun], interval: Range<UInt64>, hugetlb: Bool = false) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        for (i, r) in runs.enumerated() where !r.flags.contains(.noFolio) && (hugetlb || !r.flags.contains(.hugetlb)) {
            let lo = i == 0 ? interval.lowerBound : r.start
            let hi = i == runs.count - 1 ? interval.upperBound : r.end
            if let last = out.last, last.upperBound == lo {
                out[out.count - 1] = last.lowerBound..<hi
            } else {
                out.append(lo..<hi)
            }
        }
        return out
    }

    /// Maximal segments of `runs` clipped to `range`: adjacent runs merge when
    /// page size and flags agree and, where physical addresses are known, they
    /// continue each other physically.
    package static func segments(_ runs: [BackingRun], range: Range<UInt64>) -> ContiguousArray<Segment> {
        var out = ContiguousArray<Segment>()
        for r in runs {
            let lo = max(r.start, range.lowerBound), hi = min(r.end, range.upperBound)
            guard lo < hi else { continue }
            let phys = r.phys == physUnknown ? physUnknown : r.phys + (lo - r.start)
            if var last = out.last, last.end == lo, last.pageShift == r.pageShift, last.flags == r.flags,
               last.node == r.node, (last.phys == physUnknown) == (phys == physUnknown),
               last.phys == physUnknown || last.phys &+ last.len == phys {
                last.len += hi - lo
                out[out.count - 1] = last
            } else {
                out.append(Segment(addr: lo, len: hi - lo, phys: phys, pageShift: r.pageShift, flags: r.flags,
                                   node: r.node))
            }
        }
        return out
    }

    /// The folio holding `address`, from the segments of a pinned range.
    package static func folio(at address: UInt64, in segments: ContiguousArray<Segment>) -> Range<UInt64> {
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].end <= address { lo = mid + 1 } else { hi = mid }
        }
        let shift = lo < segments.count && !segments[lo].flags.contains(.noFolio)
            ? segments[lo].pageShift : basePageShift
        let size: UInt64 = 1 << UInt64(shift)
        let start = alignDown(address, size)
        return start..<(start + size)
    }
}

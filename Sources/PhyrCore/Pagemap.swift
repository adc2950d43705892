// SPDX-License-Identifier: MIT
/// The reading of /proc/self/pagemap entries
/// (Documentation/admin-guide/mm/pagemap.rst), as pure functions: the kernel
/// edge reads the entries, this says what they mean.
package enum Pagemap {
    package static let present: UInt64 = 1 << 63
    package static let file: UInt64 = 1 << 61
    package static let pfnMask: UInt64 = (1 << 55) - 1

    /// Whether the entries of one 2 MiB-aligned block look like one huge
    /// page: every page present and, where PFNs are visible, physically
    /// contiguous from an aligned PFN.  Without PFNs it is a best guess,
    /// trusting smaps' count of PMD-mapped memory.
    package static func looksLikeHugePage(_ e: ArraySlice<UInt64>) -> Bool {
        guard let first = e.first, e.allSatisfy({ $0 & present != 0 }) else { return false }
        let pfn0 = first & pfnMask
        if pfn0 == 0 { return true }  // PFNs hidden: trust smaps' total
        let pagesPerBlock = UInt64(e.count)
        guard pfn0 % pagesPerBlock == 0 else { return false }
        for (i, x) in e.enumerated() where x & pfnMask != pfn0 + UInt64(i) { return false }
        return true
    }

    /// The backing of `[lo, hi)` in mapping `m`, from the pagemap entries of
    /// the pages from `from` on: whole 2 MiB blocks that look like huge pages
    /// (where `thp`: smaps says the mapping has PMD-mapped memory), else page
    /// by page.  Appended to `out`, merged with what it continues.
    package static func regions(_ entries: [UInt64], from: UInt64, _ lo: UInt64, _ hi: UInt64, in m: Mapping,
                                thp: Bool, into out: inout [ScanRegion]) {
        func append(_ r: ScanRegion) {
            if var last = out.last, last.end == r.start, last.present == r.present, last.huge == r.huge,
               last.file == r.file, last.zeroPage == r.zeroPage {
                last.end = r.end
                out[out.count - 1] = last
            } else {
                out.append(r)
            }
        }
        let hugeSize: UInt64 = 1 << UInt64(pmdPageShift)
        func entry(_ a: UInt64) -> UInt64 {
            let i = Int((a - from) / basePageSize)
            return i < entries.count ? entries[i] : 0
        }
        var a = lo
        while a < hi {
            let block = alignDown(a, hugeSize)
            let blockEnd = min(block + hugeSize, hi)
            if thp, block >= m.start, block + hugeSize <= m.end, block >= from {
                let first = Int((block - from) / basePageSize), count = Int(hugeSize / basePageSize)
                if first + count <= entries.count, looksLikeHugePage(entries[first..<(first + count)]) {
                    append(ScanRegion(start: a, end: blockEnd, present: true, huge: true,
                                      file: entry(a) & file != 0, zeroPage: false))
                    a = blockEnd
                    continue
                }
            }
            // Page by page to the block's end, one region per change.
            while a < blockEnd {
                let e = entry(a)
                let isPresent = e & present != 0
                append(ScanRegion(start: a, end: a + basePageSize, present: isPresent,
                                  huge: m.isHugetlb && isPresent, file: e & file != 0, zeroPage: false))
                a += basePageSize
            }
        }
    }

    /// The piece of `run` in the page at `page` (of `size` bytes) whose entry
    /// is `entry`, with its physical address (unknown where the PFN is not
    /// shown); appended to `out`, merged with the piece it continues.
    package static func appendPhysical(_ run: BackingRun, page: UInt64, size: UInt64, entry: UInt64,
                                       into out: inout [BackingRun]) {
        let lo = max(page, run.start), hi = min(page + size, run.end)
        let pfn = entry & pfnMask
        let phys = (entry & present != 0 && pfn != 0) ? (pfn << UInt64(basePageShift)) + (lo - page) : physUnknown
        var piece = run
        piece.start = lo
        piece.end = hi
        piece.phys = phys
        out.appendMerging(piece)
    }
}

// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore
import Synchronization

/// What backs each page of a span: PAGEMAP_SCAN (one ioctl returns merged
/// regions, no privilege needed), or on older kernels /proc/self/pagemap read
/// entry by entry with smaps' per-VMA huge page totals.
package enum PageScanner {
    /// `files`: the process whose memory is scanned (pagemap is opened with
    /// PTRACE_MODE_READ, and its answers are about the process that owns it).
    package static func scan(_ span: Range<UInt64>, mappings: [Mapping], in files: ProcFiles = .shared) throws(Errno) -> [ScanRegion] {
        if KernelFeatures.shared.pagemapScan.load(ordering: .relaxed) {
            do {
                // Telling file pages from anonymous ones costs the kernel a
                // struct page lookup per PTE (6 ms per GiB here); only private
                // file mappings need it, the rest say so in their VMA.
                let needFile = mappings.contains { $0.fileBacked && !$0.shared }
                return try pagemapScan(span, fileCategory: needFile, in: files)
            } catch let e where e.code == ENOTTY {
                KernelFeatures.shared.pagemapScan.store(false, ordering: .relaxed)
            }
        }
        return try pagemapEntries(span, mappings: mappings, in: files)
    }

    /// Whether `scan` asks PAGEMAP_SCAN (6.7+): merged regions, huge pages
    /// told for certain.  Its fallback reads 8 bytes of pagemap per 4 KiB
    /// page and, without PFNs, takes a fully present block of a VMA with
    /// huge pages for one.
    package static var scansRegions: Bool { KernelFeatures.shared.pagemapScan.load(ordering: .relaxed) }

    /// Whether `scan` tells huge pages from 4 KiB ones for certain: with
    /// PAGEMAP_SCAN, or with PFNs visible to the pagemap fallback.
    package static var tellsHugePagesApart: Bool { scansRegions || (try? PhysicalAddresses.visible()) == true }

    private static let returnMask = UInt64(PHYR_PAGE_IS_PRESENT | PHYR_PAGE_IS_HUGE
                                           | PHYR_PAGE_IS_PFNZERO | PHYR_PAGE_IS_SWAPPED)

    /// No category masks: every page of every walked VMA is reported, so the
    /// holes in the answer are exactly the VMAs the walk skips (VM_PFNMAP).
    package static func pagemapScan(_ span: Range<UInt64>, fileCategory: Bool = true, in files: ProcFiles = .shared) throws(Errno)
        -> [ScanRegion] {
        let fd = try files.descriptor(.pagemap)
        // A span of a few huge pages has a few regions: its buffer lives on
        // the stack.  A full buffer makes the kernel stop at walk_end, and the
        // next call goes on from there.
        let capacity = span.count <= 8 << pmdPageShift ? 16 : 512
        return try withUnsafeTemporaryAllocation(of: phyr_page_region.self, capacity: capacity) { vec throws(Errno) in
            var out: [ScanRegion] = []
            var start = span.lowerBound
            while start < span.upperBound {
                var arg = phyr_pm_scan_arg()
                arg.size = UInt64(MemoryLayout<phyr_pm_scan_arg>.size)
                arg.start = start
                arg.end = span.upperBound
                arg.return_mask = returnMask | (fileCategory ? UInt64(PHYR_PAGE_IS_FILE) : 0)
                arg.vec = UInt64(UInt(bitPattern: vec.baseAddress))
                arg.vec_len = UInt64(vec.count)
                let n = try shimRetrying { phyr_shim_ioctl(fd, UInt(PHYR_PAGEMAP_SCAN), &arg) }
                for r in vec[0..<min(Int(n), vec.count)] {
                    let c = r.categories
                    out.append(ScanRegion(start: r.start, end: r.end,
                                          present: c & UInt64(PHYR_PAGE_IS_PRESENT) != 0,
                                          huge: c & UInt64(PHYR_PAGE_IS_HUGE) != 0,
                                          file: c & UInt64(PHYR_PAGE_IS_FILE) != 0,
                                          zeroPage: c & UInt64(PHYR_PAGE_IS_PFNZERO) != 0))
                }
                guard arg.walk_end > start else { break }
                start = arg.walk_end
            }
            return out
        }
    }

    /// The fallback: one pagemap entry per page.  Huge pages are not marked in
    /// pagemap, so a fully present 2 MiB-aligned block counts as one when smaps
    /// says the VMA has PMD-mapped memory and, where PFNs are visible, the block
    /// is physically contiguous and aligned (`Pagemap.regions`).  Without PFNs
    /// it is a best guess; locking still rounds to whole blocks, so no huge
    /// mapping is split.
    package static func pagemapEntries(_ span: Range<UInt64>, mappings: [Mapping], in files: ProcFiles = .shared) throws(Errno)
        -> [ScanRegion] {
        var out: [ScanRegion] = []
        let hugeSize: UInt64 = 1 << UInt64(pmdPageShift)
        for m in mappings where !m.noFolio {
            let lo = max(m.start, span.lowerBound), hi = min(m.end, span.upperBound)
            guard lo < hi else { continue }
            // One read per mapping, widened to the whole 2 MiB blocks around
            // the span where smaps says the mapping has huge pages.
            let thp = !m.isHugetlb && m.pmdMappedBytes > 0
            let from = thp ? max(m.start, alignDown(lo, hugeSize)) : lo
            let to = thp ? min(m.end, alignUp(hi, hugeSize)) : hi
            Pagemap.regions(try readEntries(from..<to, in: files), from: from, lo, hi, in: m, thp: thp, into: &out)
        }
        return out
    }

    /// The pagemap entry of the page at `address`, through pagemap's `fd`.
    package static func readEntry(_ address: UInt64, fd: Int32) throws(Errno) -> UInt64 {
        var entry: UInt64 = 0
        _ = try withUnsafeMutablePointer(to: &entry) { p throws(Errno) -> Int in
            try preadFully(fd, UnsafeMutableRawPointer(p), 8, (address / basePageSize) * 8)
        }
        return entry
    }

    /// Pagemap entries of every 4 KiB page of `r` (page-aligned).
    package static func readEntries(_ r: Range<UInt64>, in files: ProcFiles = .shared) throws(Errno) -> [UInt64] {
        let fd = try files.descriptor(.pagemap)
        let count = Int((r.upperBound - r.lowerBound) / basePageSize)
        guard count > 0 else { return [] }
        var entries = [UInt64](repeating: 0, count: count)
        _ = try entries.withUnsafeMutableBufferPointer { buf throws(Errno) -> Int in
            guard let base = buf.baseAddress else { return 0 }
            return try preadFully(fd, UnsafeMutableRawPointer(base), buf.count * 8, (r.lowerBound / basePageSize) * 8)
        }
        return entries
    }
}

/// Physical addresses, from /proc/self/pagemap: the kernel shows PFNs only to
/// CAP_SYS_ADMIN and zeroes them for everyone else.
package enum PhysicalAddresses {
    /// Whether this process sees PFNs: the page under our own stack frame is
    /// certainly present, so a zero PFN there means they are hidden.
    package static func visible() throws(Errno) -> Bool {
        var probe: UInt64 = 0
        let here = withUnsafeMutablePointer(to: &probe) { UInt64(UInt(bitPattern: $0)) }
        let fd = try ProcFiles.shared.descriptor(.pagemap)
        return try PageScanner.readEntry(here, fd: fd) & Pagemap.pfnMask != 0
    }

    /// Splits runs where physical contiguity breaks and fills in `phys`.
    /// One pagemap read per huge page; base pages are read in bulk.
    package static func attach(_ runs: [BackingRun]) throws(Errno) -> [BackingRun] {
        let fd = try ProcFiles.shared.descriptor(.pagemap)
        var out: [BackingRun] = []
        for run in runs {
            if run.flags.contains(.noFolio) { out.append(run); continue }
            let size = run.pageSize
            var page = alignDown(run.start, size)
            if size == basePageSize {
                let entries = try PageScanner.readEntries(page..<alignUp(run.end, size))
                for e in entries {
                    Pagemap.appendPhysical(run, page: page, size: size, entry: e, into: &out)
                    page += size
                }
            } else {
                while page < run.end {
                    Pagemap.appendPhysical(run, page: page, size: size, entry: try PageScanner.readEntry(page, fd: fd),
                                           into: &out)
                    page += size
                }
            }
        }
        return out
    }
}

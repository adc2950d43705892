// SPDX-License-Identifier: MIT
import Glibc
import Phyr
import PhyrCore

/// A process as phyr-inspect reports it.
struct ProcessReport {
    var pid: Int32
    var command: String
    var settings: THPSettings
    var mappings: [MappingReport]
    var rings: [RingReport]
}

struct RingReport {
    /// Every descriptor of the process naming this ring (libphyr keeps a
    /// duplicate of each ring it registers in), ascending.
    var fds: [Int32]
    var fd: Int32 { fds.first ?? -1 }
    /// nil when the kernel did not list the table (the ring stayed busy).
    var buffers: [BufferReport]?
}

enum InspectError: Error {
    case noProcess(Int32)
    case notPermitted(Int32, String)
    case unreadable(String, Errno)
    case nothingMapped(Range<UInt64>)
}

/// Reads a process through the library's own kernel readers (smaps,
/// status, PAGEMAP_SCAN or pagemap, fdinfo), given its /proc files, and
/// lets the core decide what it means.
struct Inspector {
    let files: ProcFiles
    let pid: Int32

    init(pid: Int32) {
        self.pid = pid
        files = ProcFiles(pid: pid)
    }

    func inspect(range: Range<UInt64>?, rings wantRings: Bool) throws(InspectError) -> ProcessReport {
        var st = stat()
        if stat(files.directory, &st) != 0 { throw .noProcess(pid) }
        let settings = Mappings.thpSettings(of: files)
        var all: [VMAStats] = []
        do throws(Errno) {
            // Buffers may lie anywhere: with --io-uring every VMA is read.
            let (lo, hi) = wantRings ? (UInt64(0), UInt64.max) : (range?.lowerBound ?? 0, range?.upperBound ?? .max)
            _ = try Mappings.smaps(in: files, from: lo, to: hi) { all.append($0); return true }
        } catch {
            throw failure(error, reading: "smaps")
        }
        var shown = all
        if let range {
            shown = all.filter { $0.mapping.start < range.upperBound && range.lowerBound < $0.mapping.end }
            if shown.isEmpty { throw .nothingMapped(range) }
        }
        let mappings = shown.map { v in
            Inspection.report(v, settings: settings, interiorBase: interiorBase(v, settings: settings))
        }
        var rings: [RingReport] = []
        if wantRings {
            let fds: [Int32]
            do throws(Errno) { fds = try RingFiles.ioUrings(in: files) } catch { throw failure(error, reading: "fd") }
            let kernel = KernelFeatures.shared.coalescing
            var seen: [RingFiles.Identity: Int] = [:]
            for fd in fds {
                if let id = RingFiles.identity(fd, in: files) {
                    if let known = seen[id] {
                        rings[known].fds.append(fd)
                        continue
                    }
                    seen[id] = rings.count
                }
                guard let listed = RingFiles.buffers(fd, in: files) else {
                    rings.append(RingReport(fds: [fd], buffers: nil))
                    continue
                }
                var charged = CountedIntervalMap()
                let reports = listed.sorted { $0.index < $1.index }.map { b in
                    Inspection.buffer(index: b.index, addr: b.addr, len: b.len, runs: backing(b, all),
                                      kernel: kernel, charged: &charged,
                                      notEligible: notEligible(b, all, settings: settings))
                }
                rings.append(RingReport(fds: [fd], buffers: reports))
            }
        }
        return ProcessReport(pid: pid, command: command(), settings: settings, mappings: mappings, rings: rings)
    }

    private func failure(_ e: Errno, reading what: String) -> InspectError {
        var st = stat()
        if stat(files.directory, &st) != 0 { return .noProcess(pid) }
        if e.code == EACCES || e.code == EPERM {
            return .notPermitted(pid, files.path(what))
        }
        return .unreadable(files.path(what), e)
    }

    private func command() -> String {
        var name = ""
        try? forEachLine(files.path("comm")) { line in
            name = String(decoding: line, as: UTF8.self)
            return false
        }
        return name
    }

    /// Bytes of 4 KiB pages inside the aligned 2 MiB extents of a mapping
    /// that is eligible and not all huge, by a scan of just those extents;
    /// nil where it need not be told, or cannot be for certain (before 6.7
    /// without CAP_SYS_ADMIN).
    private func interiorBase(_ v: VMAStats, settings: THPSettings) -> UInt64? {
        let m = v.mapping
        guard !m.isHugetlb, !m.noFolio, v.rss > v.pmdMapped, Inspection.notEligible(v, settings: settings) == nil else {
            return nil
        }
        let huge: UInt64 = 1 << UInt64(pmdPageShift)
        let lo = alignUp(m.start, huge), hi = alignDown(m.end, huge)
        guard lo < hi, PageScanner.tellsHugePagesApart,
              let regions = try? PageScanner.scan(lo..<hi, mappings: [m], in: files) else { return nil }
        return Backing.classify(regions, span: lo..<hi, mappings: [m])
            .filter { $0.present && !$0.flags.contains(.noFolio) && $0.pageShift == basePageShift }
            .reduce(0) { $0 + ($1.end - $1.start) }
    }

    /// The VMAs of `all` (in address order) that meet [lo, hi).
    private func overlapping(_ lo: UInt64, _ hi: UInt64, _ all: [VMAStats]) -> ArraySlice<VMAStats> {
        var l = 0, h = all.count
        while l < h {
            let mid = l + (h - l) / 2
            if all[mid].mapping.end > lo { h = mid } else { l = mid + 1 }
        }
        var e = l
        while e < all.count && all[e].mapping.start < hi { e += 1 }
        return all[l..<e]
    }

    /// Why the mappings under a buffer cannot hold THP, the first that says.
    private func notEligible(_ b: RingFiles.Buffer, _ all: [VMAStats], settings: THPSettings) -> String? {
        for v in overlapping(b.addr, b.addr &+ b.len, all) where !v.mapping.isHugetlb {
            if let why = Inspection.notEligible(v, settings: settings) { return why }
        }
        return nil
    }

    /// What backs a buffer's memory now: the VMAs tiling it, scanned.  Memory
    /// no longer mapped (the kernel may still hold it) comes back as a run
    /// with no folio.
    private func backing(_ b: RingFiles.Buffer, _ all: [VMAStats]) -> [BackingRun] {
        let lo = alignDown(b.addr, basePageSize)
        let (hiRaw, overflow) = b.addr.addingReportingOverflow(b.len)
        let hi = alignUp(hiRaw, basePageSize)
        let unmapped = [BackingRun(start: lo, end: max(hi, lo + basePageSize), pageShift: basePageShift, flags: .noFolio)]
        guard !overflow, b.len > 0, lo < hi else { return unmapped }
        var tiles: [Mapping] = []
        var at = lo
        for v in overlapping(lo, hi, all) {
            guard v.mapping.start <= at else { break }
            tiles.append(v.mapping)
            at = v.mapping.end
        }
        guard at >= hi, let regions = try? PageScanner.scan(lo..<hi, mappings: tiles, in: files) else { return unmapped }
        return Backing.classify(regions, span: lo..<hi, mappings: tiles)
    }
}

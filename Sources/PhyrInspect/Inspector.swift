// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// A process as phyr-inspect reports it.
struct ProcessReport {
    var pid: Int32
    var command: String
    var settings: THPSettings
    var mappings: [MappingReport]
    var rings: [RingReport]
    /// VmPin of the process's status: what the kernel charged for its
    /// registered buffers (all rings), by its own count.
    var vmPin: UInt64?
    /// Inodes of io_urings mapped into the process that no descriptor of it
    /// names (closed after io_uring_register_ring_fd): not listable.
    var unlistedRings: [UInt64]
}

struct RingReport {
    /// Every descriptor of the process naming this ring (libphyr keeps a
    /// duplicate of each ring it registers in), ascending.
    var fds: [Int32]
    var fd: Int32 { fds.first ?? -1 }
    /// nil when the kernel did not list the table (the ring stayed busy).
    var buffers: [BufferReport]?
}

/// The tool's refusals, as sentences: the process is gone, unreadable, or
/// has nothing where it was asked to look.
enum Refusal {
    static func noProcess(_ pid: Int32) -> PhyrError {
        PhyrError(.ESRCH, "no process \(pid) (/proc/\(pid) does not exist)")
    }

    static func exited(_ pid: Int32) -> PhyrError {
        PhyrError(.ESRCH, "process \(pid) exited while it was being inspected")
    }

    static func noMemory(_ pid: Int32) -> PhyrError {
        PhyrError(.ESRCH, "process \(pid) has no memory to inspect (a zombie, or a kernel thread)")
    }

    static func notPermitted(_ pid: Int32, _ path: String) -> PhyrError {
        PhyrError(.EACCES, "not permitted to read process \(pid)'s memory (\(path): permission denied): the kernel "
                  + "shows it only to callers allowed PTRACE_MODE_READ on it -- its own user (unless it is not "
                  + "dumpable), or CAP_SYS_PTRACE (root)")
    }

    static func unreadable(_ path: String, _ e: Errno) -> PhyrError {
        PhyrError(e, "cannot read \(path): \(e)")
    }

    static func nothingMapped(_ r: Range<UInt64>, _ pid: Int32) -> PhyrError {
        PhyrError(.ENOENT, "nothing is mapped in [\(Inspection.hexText(r.lowerBound)), \(Inspection.hexText(r.upperBound))) "
                  + "of process \(pid)")
    }
}

/// Reads a process through the library's own kernel readers (smaps,
/// status, PAGEMAP_SCAN or pagemap, fdinfo), given its /proc files, and
/// lets the core decide what it means.
struct Inspector {
    private(set) var files: ProcFiles
    let pid: Int32

    init(pid: Int32) {
        self.pid = pid
        files = ProcFiles(pid: pid)
    }

    /// A live thread of the process other than its main one, which may have
    /// exited (pthread_exit) and left nothing to read in /proc/PID.
    private func otherThread() -> ProcFiles? {
        let tids = ((try? directoryEntries(files.path("task"))) ?? []).compactMap { Int32($0) }
        return tids.first { $0 != pid }.map { ProcFiles(pid: pid, thread: $0) }
    }

    private func readSmaps(from lo: UInt64, to hi: UInt64) throws(PhyrError) -> [VMAStats] {
        var all: [VMAStats] = []
        do throws(Errno) {
            _ = try Smaps.read(in: files, from: lo, to: hi) { all.append($0); return true }
        } catch {
            throw failure(error, reading: "smaps")
        }
        return all
    }

    mutating func inspect(range: Range<UInt64>?, rings wantRings: Bool) throws(PhyrError) -> ProcessReport {
        if !files.processExists { throw Refusal.noProcess(pid) }
        let settings = SystemSettings.thpSettings(of: files)
        // Buffers may lie anywhere: with --io-uring every VMA is read.
        let (lo, hi) = wantRings ? (UInt64(0), UInt64.max) : (range?.lowerBound ?? 0, range?.upperBound ?? .max)
        var all = try readSmaps(from: lo, to: hi)
        if all.isEmpty && range == nil {
            // A main thread that exited leaves /proc/PID without memory;
            // the process's other threads still show it.
            guard let thread = otherThread() else {
                if !files.processExists { throw Refusal.exited(pid) }
                throw Refusal.noMemory(pid)
            }
            files = thread
            all = try readSmaps(from: lo, to: hi)
        }
        var shown = all
        if let range {
            shown = all.filter { $0.mapping.start < range.upperBound && range.lowerBound < $0.mapping.end }
            if shown.isEmpty { throw Refusal.nothingMapped(range, pid) }
        }
        var mappings = shown.map { v in Inspection.report(v, settings: settings) { interiorBase(v.mapping) } }
        placeOnNodes(&mappings)
        var rings: [RingReport] = []
        var unlisted: [UInt64] = []
        if wantRings {
            let fds: [Int32]
            do throws(Errno) { fds = try RingFiles.ioUrings(in: files) } catch { throw failure(error, reading: "fd") }
            // The release's rules, not the library's timing probe: the answer
            // must not depend on how busy the machine is.
            let kernel = IoUringProbes.coalescingByRelease()
            var seen: [RingIdentity: Int] = [:]
            var ringInodes = Set<UInt64>()
            for fd in fds {
                if let id = RingFiles.identity(fd, in: files) {
                    ringInodes.insert(id.inode)
                    if let known = seen[id] {
                        rings[known].fds.append(fd)
                        continue
                    }
                    seen[id] = rings.count
                }
                // A registration of 1 GiB of 4 KiB pages holds the ring's lock for 250 ms.
                guard let listed = RingFiles.buffers(fd, in: files, patience: 0.5) else {
                    rings.append(RingReport(fds: [fd], buffers: nil))
                    continue
                }
                var charged = CountedIntervalMap()
                let reports = listed.sorted { $0.index < $1.index }.map { b in
                    let runs = backing(b, all)
                    var report = Inspection.buffer(index: b.index, addr: b.addr, len: b.len, runs: runs,
                                                   kernel: kernel, charged: &charged,
                                                   notHuge: notHuge(b, all, settings: settings))
                    report.nodes = runs.map(nodes) ?? []
                    return report
                }
                rings.append(RingReport(fds: [fd], buffers: reports))
            }
            unlisted = Set(all.filter { $0.mapping.name == "anon_inode:[io_uring]" }.compactMap { $0.mapping.file?.inode })
                .subtracting(ringInodes).sorted()
        }
        // Read to the end while the process lived?  A process gone meanwhile
        // leaves a short read that looks like a small process.
        if !files.processExists { throw Refusal.exited(pid) }
        let vmPin = procField(files.path("status"), "VmPin:").map { $0 &* 1024 }
        return ProcessReport(pid: pid, command: command(), settings: settings, mappings: mappings, rings: rings,
                             vmPin: vmPin, unlistedRings: unlisted)
    }

    /// Each mapping's resident bytes per node: on a machine with one node
    /// all of them are on it, and nothing is read; elsewhere numa_maps says
    /// (left empty where it cannot be read).
    private func placeOnNodes(_ mappings: inout [MappingReport]) {
        if let only = Numa.onlyNode {
            for i in mappings.indices {
                let m = mappings[i]
                let resident = m.hugeBytes + m.hugetlbBytes + m.baseBytes
                mappings[i].nodes = resident > 0 ? [NodeBytes(node: only, bytes: resident)] : []
            }
            return
        }
        guard let byStart = try? Numa.residentBytes(in: files) else { return }
        for i in mappings.indices { mappings[i].nodes = byStart[mappings[i].start] ?? [] }
    }

    /// The nodes a buffer's memory is on, as the library learns them for a
    /// pin; empty where the kernel would not say.
    private func nodes(_ runs: [BackingRun]) -> [Int32] {
        Nodes.of((try? Numa.located(runs, pid: pid)) ?? [])
    }

    private func failure(_ e: Errno, reading what: String) -> PhyrError {
        if !files.processExists || e == .ESRCH { return Refusal.exited(pid) }
        if e == .EACCES || e == .EPERM { return Refusal.notPermitted(pid, files.path(what)) }
        return Refusal.unreadable(files.path(what), e)
    }

    /// The process's comm, whole: a name set by prctl may hold newlines.
    private func command() -> String {
        var lines: [String] = []
        try? forEachLine(files.path("comm")) { line in
            lines.append(String(decoding: line, as: UTF8.self))
            return true
        }
        return lines.joined(separator: "\n")
    }

    /// Bytes of 4 KiB pages inside the aligned 2 MiB extents of an eligible
    /// mapping that is not all huge, by a scan of just those extents; nil
    /// where that cannot be told cheaply and for certain: before 6.7 the scan
    /// reads 8 bytes of pagemap per 4 KiB page (a reservation of terabytes),
    /// and without PFNs it guesses huge pages.
    private func interiorBase(_ m: Mapping) -> UInt64? {
        let huge: UInt64 = 1 << UInt64(pmdPageShift)
        let lo = alignUp(m.start, huge), hi = alignDown(m.end, huge)
        guard lo < hi, PageScanner.scansRegions,
              let regions = try? PageScanner.scan(lo..<hi, mappings: [m], in: files) else { return nil }
        return Backing.classify(regions, span: lo..<hi, mappings: [m])
            .filter { $0.present && !$0.flags.contains(.noFolio) && $0.pageShift == basePageShift }
            .reduce(0) { $0 + ($1.end - $1.start) }
    }

    /// The VMAs of `all` (in address order) that meet [lo, hi).
    private func overlapping(_ lo: UInt64, _ hi: UInt64, _ all: [VMAStats]) -> ArraySlice<VMAStats> {
        let l = firstEnding(after: lo, in: all) { $0.mapping.end }
        var e = l
        while e < all.count && all[e].mapping.start < hi { e += 1 }
        return all[l..<e]
    }

    /// Why the mappings under a buffer cannot hold THP, the first that says.
    private func notHuge(_ b: ListedBuffer, _ all: [VMAStats], settings: THPSettings)
        -> (text: String, collapsible: Bool)? {
        for v in overlapping(b.addr, b.addr &+ b.len, all) where !v.mapping.isHugetlb {
            if let why = Inspection.notHuge(v, settings: settings) { return why }
        }
        return nil
    }

    /// What backs a buffer's memory now: the VMAs tiling it, scanned.  Memory
    /// no longer mapped (the kernel may still hold it) comes back as a run
    /// with no folio; nil when the scan failed.
    private func backing(_ b: ListedBuffer, _ all: [VMAStats]) -> [BackingRun]? {
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
        guard at >= hi else { return unmapped }
        guard let regions = try? PageScanner.scan(lo..<hi, mappings: tiles, in: files) else { return nil }
        return Backing.classify(regions, span: lo..<hi, mappings: tiles)
    }
}

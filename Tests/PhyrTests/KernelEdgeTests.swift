// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import Testing
@testable import PhyrCore
@testable import PhyrKernel

/// The kernel edges against the real kernel: each modern interface and its
/// fallback must describe the same memory the same way.
@Suite(.serialized) struct KernelEdgeTests {
    static let M: UInt64 = 1 << 20

    /// Anonymous memory, `len` bytes at a 2 MiB-aligned address.
    static func mapAligned(_ len: UInt64, prot: Int32 = PROT_READ | PROT_WRITE, flags: Int32 = MAP_PRIVATE) -> UInt64 {
        let raw = mmap(nil, Int(len + 2 * M), prot, flags | MAP_ANONYMOUS, -1, 0)
        #expect(raw != MAP_FAILED)
        let base = UInt64(UInt(bitPattern: raw))
        let start = alignUp(base, 2 * M)
        if start > base { munmap(raw, Int(start - base)) }
        let tail = base + len + 2 * M - (start + len)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: UInt(start + len)), Int(tail)) }
        return start
    }

    static func ptr(_ a: UInt64) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(a)) }

    /// The mappings of a tiling with no hole.
    static func mapped(_ t: Tiling) throws -> [Mapping] {
        guard case .mapped(let m) = t else { throw Errno.EFAULT }
        return m
    }

    /// Whether the running kernel has the ioctl a test compares against its
    /// fallback; a test of a missing interface is skipped, saying so.
    static let hasProcmapQuery: Bool = {
        var q = phyr_procmap_query()
        q.size = UInt64(MemoryLayout<phyr_procmap_query>.size)
        q.query_flags = UInt64(PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA)
        let fd = open("/proc/self/maps", O_RDONLY)
        defer { close(fd) }
        return phyr_shim_ioctl(fd, UInt(PHYR_PROCMAP_QUERY), &q) != -ENOTTY
    }()
    static let hasPagemapScan: Bool = {
        var arg = phyr_pm_scan_arg()
        arg.size = UInt64(MemoryLayout<phyr_pm_scan_arg>.size)
        let fd = open("/proc/self/pagemap", O_RDONLY)
        defer { close(fd) }
        return phyr_shim_ioctl(fd, UInt(PHYR_PAGEMAP_SCAN), &arg) != -ENOTTY
    }()
    static let noProcmap = "PROCMAP_QUERY is missing (Linux 6.11): nothing to compare smaps and maps against"
    static let noPagemapScan = "PAGEMAP_SCAN is missing (Linux 6.7): nothing to compare pagemap entries against"

    static var vvar: Range<UInt64>? {
        var found: Range<UInt64>?
        try? forEachLine("/proc/self/maps") { raw in
            let line = String(decoding: raw, as: UTF8.self)
            guard line.hasSuffix("[vvar]") else { return true }
            let bounds = line.split(separator: " ")[0].split(separator: "-")
            if let lo = UInt64(bounds[0], radix: 16), let hi = UInt64(bounds[1], radix: 16) { found = lo..<hi }
            return false
        }
        return found
    }

    @Test(.enabled(if: hasProcmapQuery, .init(rawValue: noProcmap)))
    func procmapQueryAndSmapsAgree() throws {
        let base = Self.mapAligned(12 * Self.M)
        defer { munmap(Self.ptr(base), Int(12 * Self.M)) }
        mprotect(Self.ptr(base + 4 * Self.M), Int(4 * Self.M), PROT_READ)
        let span = base..<(base + 12 * Self.M)
        let modern = try Self.mapped(ProcmapQuery.tiling(span))
        let legacy = try Self.mapped(Mappings.fromSmaps(span))
        #expect(modern.count == 3)
        #expect(modern.map(\.start) == legacy.map(\.start))
        #expect(modern.map(\.end) == legacy.map(\.end))
        #expect(modern.map(\.writable) == [true, false, true])
        #expect(modern.map(\.writable) == legacy.map(\.writable))
        #expect(modern.map(\.readable) == legacy.map(\.readable))
        #expect(modern.map(\.shared) == legacy.map(\.shared))
        #expect(modern.map(\.pageSize) == legacy.map(\.pageSize))
    }

    /// /proc/self/maps with the mremap probe, the 6.7-6.10 source, against
    /// PROCMAP_QUERY: the same VMAs, permissions, files and hugetlb page sizes.
    @Test(.enabled(if: hasProcmapQuery, .init(rawValue: noProcmap)))
    func procmapQueryAndMapsAgree() throws {
        let base = Self.mapAligned(12 * Self.M)
        defer { munmap(Self.ptr(base), Int(12 * Self.M)) }
        mprotect(Self.ptr(base + 4 * Self.M), Int(4 * Self.M), PROT_READ)
        var spans = [base..<(base + 12 * Self.M)]
        var hugetlb: [(UnsafeMutableRawPointer, Int)] = []
        for (shift, len) in [(21, 4 << 20), (30, 1 << 30)] {
            if let h = mmap(nil, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | Int32(shift << 26), -1, 0),
               h != MAP_FAILED {
                hugetlb.append((h, len))
                let a = UInt64(UInt(bitPattern: h))
                spans.append(a..<(a + UInt64(len)))
            }
        }
        defer { for (h, len) in hugetlb { munmap(h, len) } }
        if hugetlb.isEmpty { print("note: no hugetlb pages reserved: the page-size probe is not compared") }
        for span in spans {
            let modern = try Self.mapped(ProcmapQuery.tiling(span))
            let maps = try Self.mapped(Mappings.fromMaps(span))
            #expect(modern.map(\.start) == maps.map(\.start))
            #expect(modern.map(\.end) == maps.map(\.end))
            #expect(modern.map(\.writable) == maps.map(\.writable))
            #expect(modern.map(\.shared) == maps.map(\.shared))
            #expect(modern.map(\.pageSize) == maps.map(\.pageSize), "page sizes over \(span)")
            #expect(modern.map(\.file) == maps.map(\.file))
        }
    }

    /// Every source of mappings this kernel has names a hole the same way.
    @Test func holesAreNamedTheSameWay() {
        let base = Self.mapAligned(3 * 4096)
        defer { munmap(Self.ptr(base), 3 * 4096) }
        munmap(Self.ptr(base + 4096), 4096)
        let span = base..<(base + 3 * 4096)
        var answers = [
            Result { () throws(Errno) in try Mappings.fromMaps(span) },
            Result { () throws(Errno) in try Mappings.fromSmaps(span) },
        ]
        if Self.hasProcmapQuery { answers.append(Result { () throws(Errno) in try ProcmapQuery.tiling(span) }) }
        for answer in answers {
            switch answer {
            case .success(.hole(let hole)): #expect(hole == (base + 4096)..<(base + 2 * 4096))
            case .success(.mapped): Issue.record("a hole went unnoticed")
            case .failure(let e): Issue.record("\(e)")
            }
        }
    }

    @Test(.enabled(if: getuid() == 0, "the fallback tells THP apart only where PFNs are visible (root)"),
          .enabled(if: hasProcmapQuery && hasPagemapScan, .init(rawValue: noPagemapScan)))
    func pagemapScanAndPagemapEntriesAgree() throws {
        let len = 16 * Self.M
        let base = Self.mapAligned(len)
        defer { munmap(Self.ptr(base), Int(len)) }
        madvise(Self.ptr(base), Int(len), MADV_HUGEPAGE)
        memset(Self.ptr(base)!, 7, Int(len))
        let whole = base..<(base + len)
        let hugeBytes = try PageScanner.pagemapScan(whole).filter(\.huge).reduce(UInt64(0)) { $0 + $1.end - $1.start }
        if hugeBytes != len {
            try Test.cancel("only \(hugeBytes) of \(len) bytes came as THP: memory too fragmented to compare scanners")
        }
        // One stray base page, in a block khugepaged is told to leave alone
        // (it would collapse it back while the scanners are compared).
        madvise(Self.ptr(base + 6 * Self.M), Int(2 * Self.M), MADV_NOHUGEPAGE)
        madvise(Self.ptr(base + 6 * Self.M), 4096, MADV_DONTNEED)
        let span = (base + Self.M)..<(base + 13 * Self.M)
        let modernMaps = try Self.mapped(ProcmapQuery.tiling(span))
        let legacyMaps = try Self.mapped(Mappings.fromSmaps(span))
        let modern = Backing.classify(try PageScanner.pagemapScan(span), span: span, mappings: modernMaps)
        let legacy = Backing.classify(try PageScanner.pagemapEntries(span, mappings: legacyMaps),
                                      span: span, mappings: legacyMaps)
        #expect(modern.count >= 3, "expected huge | base (with a hole) | huge, got \(modern)")
        #expect(modern.map(\.start) == legacy.map(\.start))
        #expect(modern.map(\.pageShift) == legacy.map(\.pageShift))
        #expect(modern.map(\.flags) == legacy.map(\.flags))
        #expect(modern.map(\.present) == legacy.map(\.present))
    }

    /// [vvar] is VM_PFNMAP: memory with no folio, by every scanner this
    /// kernel has (PAGEMAP_SCAN skips it; smaps says "pf").
    @Test func vvarHasNoFolioEitherWay() throws {
        guard let vvar = Self.vvar else {
            Issue.record("no [vvar] in /proc/self/maps")
            return
        }
        let legacyMaps = try Self.mapped(Mappings.fromSmaps(vvar))
        #expect(legacyMaps.allSatisfy { $0.noFolio })
        let legacy = Backing.classify(try PageScanner.pagemapEntries(vvar, mappings: legacyMaps),
                                      span: vvar, mappings: legacyMaps)
        #expect(legacy.allSatisfy { $0.flags.contains(.noFolio) })
        guard Self.hasPagemapScan else { return }
        for maps in [try Self.mapped(Mappings.fromMaps(vvar))] + (Self.hasProcmapQuery ? [try Self.mapped(ProcmapQuery.tiling(vvar))] : []) {
            let modern = Backing.classify(try PageScanner.pagemapScan(vvar), span: vvar, mappings: maps)
            #expect(modern.allSatisfy { $0.flags.contains(.noFolio) })
            #expect(modern.map(\.flags) == legacy.map(\.flags))
        }
    }

    /// Physical addresses match pagemap's, through whichever scanner this
    /// kernel has.
    @Test func physicalAddressesFollowPagemap() throws {
        let len = 4 * Self.M
        let base = Self.mapAligned(len)
        defer { munmap(Self.ptr(base), Int(len)) }
        memset(Self.ptr(base)!, 1, Int(len))
        let visible = try PhysicalAddresses.visible()
        #expect(visible == (getuid() == 0), "PFNs visible: \(visible), uid \(getuid())")
        guard visible else { return }
        let span = base..<(base + len)
        let maps = try Self.mapped(Mappings.covering(span))
        let runs = Backing.classify(try PageScanner.scan(span, mappings: maps), span: span, mappings: maps)
        let phys = try PhysicalAddresses.attach(runs)
        let entries = try PageScanner.readEntries(base..<(base + len))
        for run in phys {
            #expect(run.phys != physUnknown)
            let first = Int((run.start - base) / 4096)
            let pages = Int((run.end - run.start) / 4096)
            let pfns = entries[first..<(first + pages)].map { ($0 & Pagemap.pfnMask) << 12 }
            #expect(pfns == (0..<pages).map { run.phys + UInt64($0) * 4096 })
        }
    }
}

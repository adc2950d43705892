// SPDX-License-Identifier: MIT
import Glibc
import Testing
@testable import Phyr

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

    @Test func procmapQueryAndSmapsAgree() throws {
        let base = Self.mapAligned(12 * Self.M)
        defer { munmap(Self.ptr(base), Int(12 * Self.M)) }
        mprotect(Self.ptr(base + 4 * Self.M), Int(4 * Self.M), PROT_READ)
        let span = base..<(base + 12 * Self.M)
        let modern = try Mappings.procmapQuery(span)
        let legacy = try Mappings.fromSmaps(span)
        #expect(modern.count == 3)
        #expect(modern.map(\.start) == legacy.map(\.start))
        #expect(modern.map(\.end) == legacy.map(\.end))
        #expect(modern.map(\.writable) == [true, false, true])
        #expect(modern.map(\.writable) == legacy.map(\.writable))
        #expect(modern.map(\.readable) == legacy.map(\.readable))
        #expect(modern.map(\.shared) == legacy.map(\.shared))
        #expect(modern.map(\.pageSize) == legacy.map(\.pageSize))
    }

    @Test func holesAreNamedTheSameWay() {
        let base = Self.mapAligned(3 * 4096)
        defer { munmap(Self.ptr(base), 3 * 4096) }
        munmap(Self.ptr(base + 4096), 4096)
        let span = base..<(base + 3 * 4096)
        let answers = [
            Result { () throws(Mappings.Failure) in try Mappings.procmapQuery(span) },
            Result { () throws(Mappings.Failure) in try Mappings.fromSmaps(span) },
        ]
        for answer in answers {
            switch answer {
            case .success: Issue.record("a hole went unnoticed")
            case .failure(.unmapped(let hole)): #expect(hole == (base + 4096)..<(base + 2 * 4096))
            case .failure(let other): Issue.record("\(other)")
            }
        }
    }

    @Test(.enabled(if: getuid() == 0, "the fallback tells THP apart only where PFNs are visible (root)"))
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
        let modernMaps = try Mappings.procmapQuery(span)
        let legacyMaps = try Mappings.fromSmaps(span)
        let modern = Backing.classify(try PageScanner.pagemapScan(span), span: span, mappings: modernMaps)
        let legacy = Backing.classify(try PageScanner.pagemapEntries(span, mappings: legacyMaps),
                                      span: span, mappings: legacyMaps)
        #expect(modern.count >= 3, "expected huge | base (with a hole) | huge, got \(modern)")
        #expect(modern.map(\.start) == legacy.map(\.start))
        #expect(modern.map(\.pageShift) == legacy.map(\.pageShift))
        #expect(modern.map(\.flags) == legacy.map(\.flags))
        #expect(modern.map(\.present) == legacy.map(\.present))
    }

    @Test func vvarHasNoFolioEitherWay() throws {
        guard let vvar = Self.vvar else {
            Issue.record("no [vvar] in /proc/self/maps")
            return
        }
        let modernMaps = try Mappings.procmapQuery(vvar)
        let legacyMaps = try Mappings.fromSmaps(vvar)
        #expect(legacyMaps.allSatisfy { $0.noFolio })
        let modern = Backing.classify(try PageScanner.pagemapScan(vvar), span: vvar, mappings: modernMaps)
        let legacy = Backing.classify(try PageScanner.pagemapEntries(vvar, mappings: legacyMaps),
                                      span: vvar, mappings: legacyMaps)
        #expect(modern.allSatisfy { $0.flags.contains(.noFolio) })
        #expect(modern.map(\.flags) == legacy.map(\.flags))
    }

    @Test func physicalAddressesFollowPagemap() throws {
        let len = 4 * Self.M
        let base = Self.mapAligned(len)
        defer { munmap(Self.ptr(base), Int(len)) }
        memset(Self.ptr(base)!, 1, Int(len))
        let visible = try PhysicalAddresses.visible()
        #expect(visible == (getuid() == 0), "PFNs visible: \(visible), uid \(getuid())")
        guard visible else { return }
        let maps = try Mappings.procmapQuery(base..<(base + len))
        let runs = Backing.classify(try PageScanner.pagemapScan(base..<(base + len)), span: base..<(base + len), mappings: maps)
        let phys = try PhysicalAddresses.attach(runs)
        let entries = try PageScanner.readEntries(base..<(base + len))
        for run in phys {
            #expect(run.phys != physUnknown)
            let first = Int((run.start - base) / 4096)
            let pages = Int((run.end - run.start) / 4096)
            let pfns = entries[first..<(first + pages)].map { ($0 & PageScanner.entryPFNMask) << 12 }
            #expect(pfns == (0..<pages).map { run.phys + UInt64($0) * 4096 })
        }
    }
}

// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// The VMAs under a span of addresses: PROCMAP_QUERY, one ioctl per VMA and
/// independent of how many mappings the process has; before 6.11, a parse of
/// /proc/self/maps (6.7 to 6.10, PAGEMAP_SCAN telling the backing) or of
/// /proc/self/smaps (before 6.7: the only other source of the page size and
/// VM_PFNMAP/VM_IO), read only as far as the span.
package enum Mappings {
    enum Failure: Error {
        case unmapped(Range<UInt64>)
        case system(Errno)
    }

    /// PROCMAP_QUERY does not tell VM_PFNMAP/VM_IO mappings apart; PAGEMAP_SCAN
    /// does (it skips them), so only the two together can replace smaps.
    private static var useProcmapQuery: Bool {
        let f = KernelFeatures.shared
        return f.procmapQuery.load(ordering: .relaxed) && f.pagemapScan.load(ordering: .relaxed)
    }

    /// The mappings tiling `span`, in order; `.unmapped` names the first hole.
    /// PROCMAP_QUERY (6.11) costs one ioctl per VMA.  Before it, the kernel
    /// has no way to ask about one address, and /proc text is read only as
    /// far as the span reaches: /proc/self/maps where PAGEMAP_SCAN (6.7) tells
    /// the rest, /proc/self/smaps (which walks every VMA's page tables) only
    /// before that.
    static func covering(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        try layout(span).mappings
    }

    /// The mappings tiling each of `spans`, for many spans at the cost of one:
    /// one PROCMAP_QUERY walk per span, or before 6.11 a single read of
    /// /proc/self/maps as far as the last span (permissions and bounds only:
    /// what checking a registration's ranges needs).  Read span by span, a
    /// registration of thousands of ranges would read the file thousands of
    /// times.  The failure names the span.
    struct SpanFailure: Error {
        var index: Int
        var failure: Failure
    }

    static func covering(each spans: [Range<UInt64>]) throws(SpanFailure) -> [[Mapping]] {
        guard !spans.isEmpty else { return [] }
        if useProcmapQuery {
            var out: [[Mapping]] = []
            for (i, span) in spans.enumerated() {
                do throws(Failure) { out.append(try procmapQuery(span)) } catch {
                    if case .system(let e) = error, e.code == ENOTTY {
                        KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
                        return try covering(each: spans)
                    }
                    throw SpanFailure(index: i, failure: error)
                }
            }
            return out
        }
        let low = spans.map(\.lowerBound).min() ?? 0
        let high = spans.map(\.upperBound).max() ?? 0
        let all: [Mapping]
        do throws(Errno) { all = try mapsBetween(low, high).mappings } catch {
            throw SpanFailure(index: 0, failure: .system(error))
        }
        var out: [[Mapping]] = []
        out.reserveCapacity(spans.count)
        for (i, span) in spans.enumerated() {
            let lo = firstEnding(after: span.lowerBound, in: all) { $0.end }
            do throws(Failure) { out.append(try tiling(all[lo...], span)) } catch {
                throw SpanFailure(index: i, failure: error)
            }
        }
        return out
    }

    /// The VMAs that meet `span`, from /proc/self/maps read only as far as the
    /// span: bounds, permissions, file.  What maps does not say, PAGEMAP_SCAN
    /// does (VM_PFNMAP VMAs are the holes in its answer), or the hugetlb page
    /// size probe does.
    static func fromMaps(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        try layoutFromMaps(span).mappings
    }

    /// The mappings tiling a span, and where the next mapping after them
    /// starts (`Layout.following`): a pin needs both, and before 6.11 one
    /// read of maps (or smaps) as far as the span tells both.
    struct Layout {
        var mappings: [Mapping]
        /// The start of the first VMA at or after the last mapping's end:
        /// .some(nil) when nothing is mapped after it, nil when not known.
        var following: UInt64??
        var source: Source
    }

    enum Source {
        case procmapQuery
        /// 6.7 to 6.10: text read as far as the span, bounds and permissions only.
        case maps
        /// Before 6.7: per-VMA huge page totals too, which faulting in changes.
        case smaps
    }

    static func layout(_ span: Range<UInt64>) throws(Failure) -> Layout {
        if useProcmapQuery {
            do {
                return Layout(mappings: try procmapQuery(span), following: nil, source: .procmapQuery)
            } catch .system(let e) where e.code == ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
            }
        }
        if KernelFeatures.shared.pagemapScan.load(ordering: .relaxed) { return try layoutFromMaps(span) }
        let (mappings, following) = try smapsLayout(span)
        return Layout(mappings: mappings, following: .some(following), source: .smaps)
    }

    private static func layoutFromMaps(_ span: Range<UInt64>) throws(Failure) -> Layout {
        let found: (mappings: [Mapping], following: UInt64?)
        do throws(Errno) { found = try mapsBetween(span.lowerBound, span.upperBound) } catch {
            throw .system(error)
        }
        var all = found.mappings
        for i in all.indices where all[i].fileBacked {
            all[i].pageSize = hugetlbPageSize(all[i]) ?? basePageSize
        }
        return Layout(mappings: try tiling(all[...], span), following: .some(found.following), source: .maps)
    }

    /// The VMAs of /proc/self/maps that end past `low` and start before
    /// `high`, read no further, and the start of the first VMA at or after
    /// `high` (nil: none).
    private static func mapsBetween(_ low: UInt64, _ high: UInt64) throws(Errno)
        -> (mappings: [Mapping], following: UInt64?) {
        var all: [Mapping] = []
        var following: UInt64?
        try forEachLine("/proc/self/maps") { line in
            guard let (start, end) = vmaBounds(line) else { return true }
            guard end > low else { return true }
            guard start < high else {
                following = start
                return false
            }
            if let vma = vmaHeader(line) { all.append(mapping(vma)) }
            return true
        }
        return (all, following)
    }

    /// How THP is enabled for this process now (the system's mode, and
    /// PR_SET_THP_DISABLE); `.always` when it cannot be read, which only
    /// makes callers more careful.
    static func thpMode() -> THPMode {
        if phyr_shim_thp_disabled() == 1 { return .never }
        return systemTHPMode()
    }

    /// transparent_hugepage/enabled; `.always` when it cannot be read.
    /// Since 6.8 the PMD size has a control of its own, which wins unless it
    /// says "inherit".
    private static func systemTHPMode() -> THPMode {
        let dir = "/sys/kernel/mm/transparent_hugepage/"
        var choice = sysfsChoice(dir + "hugepages-\(1 << (pmdPageShift - 10))kB/enabled")
        if choice == nil || choice == "inherit" { choice = sysfsChoice(dir + "enabled") }
        switch choice {
        case "never": return .never
        case "madvise": return .madvise
        default: return .always
        }
    }

    /// The bracketed choice of a sysfs setting ("always [madvise] never").
    private static func sysfsChoice(_ path: String) -> String? {
        var choice: String?
        try? forEachLine(path) { line in
            let text = String(decoding: line, as: UTF8.self)
            if let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") {
                choice = String(text[text.index(after: open)..<close])
            }
            return false
        }
        return choice
    }

    /// hugetlb page size of a mapping, or nil when it is not hugetlb.  A
    /// same-size mremap(2) that may not move is a no-op, except that the
    /// kernel first refuses (EINVAL) an address not aligned to a hugetlb
    /// VMA's page size: a probe 4 KiB in tells hugetlb from not, and the
    /// page size is the smallest of the system's hugetlb sizes whose offset
    /// is not refused (or that the mapping is too short to probe past: its
    /// length is a multiple of its page size).  Any other answer (mremap
    /// denied by seccomp, a sealed mapping) leaves smaps to say.
    static func hugetlbPageSize(_ m: Mapping) -> UInt64? {
        enum Answer { case aligned, refused, unknown }
        func probe(_ offset: UInt64) -> Answer {
            guard let p = UnsafeMutableRawPointer(bitPattern: UInt(m.start + offset)) else { return .unknown }
            switch phyr_shim_mremap_in_place(p, Int(basePageSize)) {
            case 0: return .aligned
            case -EINVAL: return .refused
            default: return .unknown
            }
        }
        let length = m.end - m.start
        guard length > basePageSize else { return nil }  // hugetlb VMAs hold at least one huge page
        switch probe(basePageSize) {
        case .aligned: return nil
        case .unknown: return smapsPageSize(m)
        case .refused: break
        }
        for size in hugetlbSizes where size > basePageSize {
            if size >= length { return size }
            switch probe(size) {
            case .aligned: return size
            case .unknown: return smapsPageSize(m)
            case .refused: continue
            }
        }
        return smapsPageSize(m)
    }

    /// The hugetlb page sizes this system offers, ascending (sysfs).
    private static let hugetlbSizes: [UInt64] = {
        var sizes: [UInt64] = []
        for name in (try? directoryEntries("/sys/kernel/mm/hugepages")) ?? [] {
            guard name.hasPrefix("hugepages-"), name.hasSuffix("kB"),
                  let kb = UInt64(name.dropFirst("hugepages-".count).dropLast(2)),
                  kb > 0, kb <= UInt64.max / 1024 else { continue }
            sizes.append(kb * 1024)
        }
        return sizes.isEmpty ? [1 << 21, 1 << 30] : sizes.sorted()
    }()

    /// One mapping's KernelPageSize from smaps, when nothing cheaper says.
    private static func smapsPageSize(_ m: Mapping) -> UInt64? {
        guard let size = (try? fromSmaps(m.start..<m.end))?.first?.pageSize, size > basePageSize else { return nil }
        return size
    }

    /// A maps or smaps header line as a Mapping.
    private static func mapping(_ vma: (start: UInt64, end: UInt64, fields: [ArraySlice<UInt8>], line: ArraySlice<UInt8>))
        -> Mapping {
        let fields = vma.fields
        let perms = Array(fields[1])
        // The name is the rest of the line after the inode and the padding
        // the kernel puts before it: spaces inside and at the end of it are
        // its own (only leading ones cannot be told from the padding).
        let name = fields.count > 5
            ? String(decoding: vma.line[fields[5].startIndex...].drop { $0 == UInt8(ascii: " ") }, as: UTF8.self) : ""
        return Mapping(start: vma.start, end: vma.end,
                       readable: perms.count > 0 && perms[0] == UInt8(ascii: "r"),
                       writable: perms.count > 1 && perms[1] == UInt8(ascii: "w"),
                       shared: perms.count > 3 && perms[3] == UInt8(ascii: "s"),
                       file: fileKey(device: fields[3], inode: fields[4]),
                       pageSize: basePageSize, noFolio: false, pmdMappedBytes: 0,
                       name: name)
    }

    /// The mappings of `all` that tile `span`; `.unmapped` names the first hole.
    private static func tiling(_ all: ArraySlice<Mapping>, _ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        var out: [Mapping] = []
        var addr = span.lowerBound
        for var m in all where m.end > addr {
            guard addr < span.upperBound else { break }
            if m.start > addr { throw .unmapped(addr..<min(m.start, span.upperBound)) }
            // A text read in pieces (maps, smaps) while other threads split
            // and merge VMAs can show one again, grown back over what was
            // printed before it: keep what is new of it, so the mappings
            // tile the span without overlapping.
            if let last = out.last, m.start < last.end { m.start = last.end }
            out.append(m)
            addr = m.end
        }
        if addr < span.upperBound { throw .unmapped(addr..<span.upperBound) }
        return out
    }

    /// The parts of `span` that are mapped, holes allowed: for unlocking
    /// mapping by mapping, since munlock(2) stops at the first hole.  With
    /// `merged`, touching mappings come out as one part; without, one part
    /// per VMA (a VMA is locked or not as a whole).
    static func mappedParts(_ span: Range<UInt64>, merged: Bool = true) throws(Errno) -> [Range<UInt64>] {
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
            let fd = try ProcFiles.shared.descriptor(.maps)
            var addr = span.lowerBound
            while addr < span.upperBound {
                var q = phyr_procmap_query()
                let rc = query(fd, addr, &q, name: nil)
                if rc == ENOENT { return out }
                if rc == ENOTTY {
                    KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
                    return try mappedParts(span, merged: merged)
                }
                if rc != 0 { throw Errno(code: rc) }
                add(q.vma_start, q.vma_end)
                addr = q.vma_end
            }
            return out
        }
        try forEachMapsLine { start, end in
            if end > span.lowerBound && start < span.upperBound { add(start, end) }
            return end < span.upperBound
        }
        return out
    }

    /// Every mapping that holds a lock with libphyr's mark (VM_LOCKED with the
    /// VM_LOCKONFAULT `Locker.lock` adds), wherever it is now, and its file:
    /// memory the caller moved with mremap(2) carries the mark along.  Reads
    /// all of /proc/self/smaps: only for repairs, never on a common path.
    static func markedLocks() throws(Errno) -> [(span: Range<UInt64>, file: FileKey?)] {
        var out: [(span: Range<UInt64>, file: FileKey?)] = []
        _ = try smaps { v in
            if LockMarks.isLibphyrLock(vmFlags: v.vmFlags) { out.append((v.mapping.start..<v.mapping.end, v.mapping.file)) }
            return true
        }
        return out
    }

    /// The bounds of the VMA holding `address`, or of the first one after it;
    /// nil when there is none.  One PROCMAP_QUERY, or /proc/self/maps read
    /// only as far as `address`.
    static func vma(atOrAfter address: UInt64) throws(Errno) -> Range<UInt64>? {
        if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed) {
            let fd = try ProcFiles.shared.descriptor(.maps)
            var q = phyr_procmap_query()
            let rc = query(fd, address, &q, name: nil)
            if rc == 0 { return q.vma_start..<q.vma_end }
            if rc == ENOENT { return nil }
            if rc != ENOTTY { throw Errno(code: rc) }
            KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
        }
        var found: Range<UInt64>?
        try forEachMapsLine { start, end in
            guard end > address else { return true }
            found = start..<end
            return false
        }
        return found
    }

    /// Calls `body` with each VMA of /proc/self/maps in address order until it
    /// returns false, reading the file only as far as that.
    private static func forEachMapsLine(_ body: (UInt64, UInt64) -> Bool) throws(Errno) {
        try forEachLine("/proc/self/maps") { line in
            guard let vma = vmaBounds(line) else { return true }
            return body(vma.start, vma.end)
        }
    }

    /// The bounds of a "start-end perms ..." line of maps or smaps, read
    /// without allocating: most lines a pin reads are only passed by.  smaps'
    /// other lines ("Size:", "AnonHugePages:") never start with lower-case
    /// hex digits and a dash.
    static func vmaBounds(_ line: ArraySlice<UInt8>) -> (start: UInt64, end: UInt64)? {
        var i = line.startIndex
        func hex() -> UInt64? {
            var v: UInt64 = 0
            let from = i
            while i < line.endIndex {
                let c = line[i]
                let d: UInt8
                if c >= 0x30 && c <= 0x39 { d = c - 0x30 } else if c >= 0x61 && c <= 0x66 { d = c - 0x61 + 10 } else { break }
                guard v >> 60 == 0 else { return nil }
                v = v << 4 | UInt64(d)
                i += 1
            }
            return i > from ? v : nil
        }
        guard let lo = hex(), i < line.endIndex, line[i] == UInt8(ascii: "-") else { return nil }
        i += 1
        guard let hi = hex(), i < line.endIndex, line[i] == UInt8(ascii: " ") else { return nil }
        return (lo, hi)
    }

    /// "start-end perms offset dev inode [name]": the first line of a VMA in
    /// maps and smaps.
    private static func vmaHeader(_ line: ArraySlice<UInt8>)
        -> (start: UInt64, end: UInt64, fields: [ArraySlice<UInt8>], line: ArraySlice<UInt8>)? {
        guard let (lo, hi) = vmaBounds(line) else { return nil }
        // The name (the sixth field on) may hold spaces: split no further.
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        return (lo, hi, Array(fields), line)
    }

    /// "08:01" and "1234" of a maps line; nil for anonymous memory (inode 0).
    static func fileKey(device: ArraySlice<UInt8>, inode: ArraySlice<UInt8>) -> FileKey? {
        guard let ino = UInt64(String(decoding: inode, as: UTF8.self)), ino != 0 else { return nil }
        let parts = device.split(separator: UInt8(ascii: ":"))
        guard parts.count == 2, let major = UInt32(String(decoding: parts[0], as: UTF8.self), radix: 16),
              let minor = UInt32(String(decoding: parts[1], as: UTF8.self), radix: 16) else { return nil }
        return FileKey(major: major, minor: minor, inode: ino)
    }

    /// One PROCMAP_QUERY per VMA.  Names are not asked for: the kernel builds
    /// them with d_path, and only error messages need them (`describe`).
    static func procmapQuery(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        let fd: Int32
        do { fd = try ProcFiles.shared.descriptor(.maps) } catch { throw .system(error) }
        var out: [Mapping] = []
        var addr = span.lowerBound
        while addr < span.upperBound {
            var q = phyr_procmap_query()
            let rc = query(fd, addr, &q, name: nil)
            if rc == ENOENT { throw .unmapped(addr..<span.upperBound) }
            if rc != 0 { throw .system(Errno(code: rc)) }
            if q.vma_start > addr { throw .unmapped(addr..<min(q.vma_start, span.upperBound)) }
            let f = q.vma_flags
            out.append(Mapping(
                start: q.vma_start, end: q.vma_end,
                readable: f & UInt64(PHYR_PROCMAP_QUERY_VMA_READABLE) != 0,
                writable: f & UInt64(PHYR_PROCMAP_QUERY_VMA_WRITABLE) != 0,
                shared: f & UInt64(PHYR_PROCMAP_QUERY_VMA_SHARED) != 0,
                file: q.inode == 0 ? nil : FileKey(major: q.dev_major, minor: q.dev_minor, inode: q.inode),
                pageSize: max(q.vma_page_size, basePageSize),
                noFolio: false, pmdMappedBytes: 0, name: ""))
            addr = q.vma_end
        }
        return out
    }

    /// PROCMAP_QUERY for the VMA covering or following `addr`; 0 or an errno
    /// (EINTR retried).
    private static func query(_ fd: Int32, _ addr: UInt64, _ q: inout phyr_procmap_query,
                              name: UnsafeMutableBufferPointer<CChar>?) -> Int32 {
        q.size = UInt64(MemoryLayout<phyr_procmap_query>.size)
        q.query_flags = UInt64(PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA)
        q.query_addr = addr
        if let name {
            q.vma_name_addr = UInt64(UInt(bitPattern: name.baseAddress))
            q.vma_name_size = UInt32(name.count)
        }
        while true {
            let rc = phyr_shim_ioctl(fd, UInt(PHYR_PROCMAP_QUERY), &q)
            if rc >= 0 { return 0 }
            if rc != -EINTR { return -rc }
        }
    }

    /// "mapping [start, end) name", for error messages.
    static func describe(_ m: Mapping) -> String {
        var name = m.name
        if name.isEmpty, let fd = try? ProcFiles.shared.descriptor(.maps) {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            var q = phyr_procmap_query()
            let rc = buf.withUnsafeMutableBufferPointer { query(fd, m.start, &q, name: $0) }
            if rc == 0 && q.vma_start == m.start && q.vma_name_size > 0 {
                name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return "mapping \(spanText(m.start..<m.end))" + (name.isEmpty ? "" : " " + name)
    }

    /// Reads /proc/self/smaps as far as `span` reaches and keeps the VMAs
    /// that meet it.
    static func fromSmaps(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        try smapsLayout(span).mappings
    }

    /// The VMAs tiling `span` from smaps, and the start of the first VMA at
    /// or after its end (nil: none), which the read stops at.
    private static func smapsLayout(_ span: Range<UInt64>) throws(Failure) -> (mappings: [Mapping], following: UInt64?) {
        var all: [Mapping] = []
        let following: UInt64?
        do throws(Errno) {
            following = try smaps(from: span.lowerBound, to: span.upperBound) { all.append($0.mapping); return true }
        } catch {
            throw .system(error)
        }
        return (try tiling(all[...], span), following)
    }

    private enum SmapsField { case kernelPageSize, rss, pmdMapped, hugetlb, locked, thpEligible, vmFlags }
    /// The lines of an smaps entry the readers use; the rest are passed by.
    private static let smapsFields: [(key: [UInt8], field: SmapsField)] = {
        let named: [(String, SmapsField)] = [
            ("Rss:", .rss), ("AnonHugePages:", .pmdMapped), ("ShmemPmdMapped:", .pmdMapped),
            ("FilePmdMapped:", .pmdMapped), ("Shared_Hugetlb:", .hugetlb), ("Private_Hugetlb:", .hugetlb),
            ("Locked:", .locked), ("THPeligible:", .thpEligible), ("KernelPageSize:", .kernelPageSize),
            ("VmFlags:", .vmFlags),
        ]
        return named.map { (key: Array($0.0.utf8), field: $0.1) }
    }()
    /// For each first byte, the indices of `smapsFields` starting with it.
    private static let smapsFieldsByFirstByte: [[Int]] = {
        var table = [[Int]](repeating: [], count: 256)
        for (i, f) in smapsFields.enumerated() { table[Int(f.key[0])].append(i) }
        return table
    }()

    /// Calls `body` with each VMA of the process's smaps that meets
    /// [low, high), in address order, until it returns false; reads no
    /// further than `high` and returns the start of the first VMA at or
    /// after it (nil: none, or stopped before).  The lines of VMAs below
    /// `low` are skipped unparsed: in a pin's read they are most of the file.
    /// smaps is read in pieces while other threads split and merge VMAs, so
    /// the kernel can list a VMA again, grown back over what it printed
    /// before: only what is new of it is passed on (its counts are the whole
    /// VMA's), and the VMAs never overlap.
    package static func smaps(in files: ProcFiles = .shared, from low: UInt64 = 0, to high: UInt64 = .max,
                              _ body: (VMAStats) -> Bool) throws(Errno) -> UInt64? {
        var following: UInt64?
        // Not an Optional: one VMA's fields are set in place, line by line.
        var current = VMAStats(mapping: Mapping(start: 0, end: 0, readable: false, writable: false, shared: false,
                                                pageSize: basePageSize, noFolio: false, pmdMappedBytes: 0, name: ""))
        var reading = false
        var stopped = false
        var delivered: UInt64 = 0
        func finish() -> Bool {
            guard reading else { return true }
            reading = false
            guard current.mapping.end > delivered else { return true }
            current.mapping.start = max(current.mapping.start, delivered)
            delivered = current.mapping.end
            if !body(current) { stopped = true }
            return !stopped
        }
        // "1234 kB": the digits, without allocating (a big process's smaps
        // has hundreds of thousands of these lines).
        func kb(_ f: ArraySlice<UInt8>) -> UInt64 {
            var v: UInt64 = 0
            for c in f {
                guard c >= 0x30 && c <= 0x39 else { break }
                v = v &* 10 &+ UInt64(c - 0x30)
            }
            return v &* 1024
        }
        let fields = smapsFields, byFirst = smapsFieldsByFirstByte
        try forEachLine(files.path("smaps")) { line in
            if let bounds = vmaBounds(line) {
                guard finish() else { return false }
                guard bounds.start < high else {
                    following = bounds.start
                    return false
                }
                guard bounds.end > low, let vma = vmaHeader(line) else { return true }
                current = VMAStats(mapping: mapping(vma))
                reading = true
                return true
            }
            guard reading, let first = line.first else { return true }
            var found: (key: [UInt8], field: SmapsField)?
            for i in byFirst[Int(first)] where line.starts(with: fields[i].key) {
                found = fields[i]
                break
            }
            guard let field = found else { return true }
            let value = line.dropFirst(field.key.count).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            switch field.field {
            case .kernelPageSize: current.mapping.pageSize = kb(value)
            case .rss: current.rss = kb(value)
            case .pmdMapped:
                current.pmdMapped &+= kb(value)
                current.mapping.pmdMappedBytes &+= kb(value)
            case .hugetlb: current.hugetlb &+= kb(value)
            case .locked: current.locked = kb(value)
            case .thpEligible: current.thpEligible = value.first == UInt8(ascii: "1")
            case .vmFlags:
                let flags = value.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
                    .map { String(decoding: $0, as: UTF8.self) }
                current.vmFlags = flags
                if flags.contains("pf") || flags.contains("io") { current.mapping.noFolio = true }
                current.mapping.hugepageAdvice = flags.contains("nh") ? .noHugepage
                    : flags.contains("hg") ? .hugepage : HugepageAdvice.none
            }
            return true
        }
        if !stopped { _ = finish() }
        return stopped ? nil : following
    }

    /// The process's THP settings: the system's modes, and whether the
    /// process turned THP off (prctl for this one, status for another).
    package static func thpSettings(of files: ProcFiles = .shared) -> THPSettings {
        let shmem = sysfsChoice("/sys/kernel/mm/transparent_hugepage/shmem_enabled") ?? "never"
        var disabled = false
        if files.pid == nil {
            disabled = phyr_shim_thp_disabled() == 1
        } else if let on = procField(files.path("status"), "THP_enabled:") {
            disabled = on == 0
        }
        return THPSettings(mode: systemTHPMode(), processDisabled: disabled, shmem: shmem)
    }
}

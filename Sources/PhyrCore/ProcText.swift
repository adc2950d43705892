// SPDX-License-Identifier: MIT
/// The kernel's text about a process, read: the lines of /proc/PID/maps and
/// smaps, and the buffer table /proc/PID/fdinfo/FD lists for an io_uring.
/// The kernel layer reads the files line by line and hands the lines here.
package enum MapsText {
    /// The bounds of a "start-end perms ..." line of maps or smaps, read
    /// without allocating: most lines a pin reads are only passed by.  smaps'
    /// other lines ("Size:", "AnonHugePages:") never start with lower-case
    /// hex digits and a dash.
    package static func bounds(_ line: ArraySlice<UInt8>) -> (start: UInt64, end: UInt64)? {
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

    /// "start-end perms offset dev inode [name]", the first line of a VMA in
    /// maps and smaps, as a Mapping (4 KiB pages until smaps or a probe says
    /// otherwise); nil for any other line.
    package static func mapping(_ line: ArraySlice<UInt8>) -> Mapping? {
        guard let (start, end) = bounds(line) else { return nil }
        // The name (the sixth field on) may hold spaces: split no further.
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        let perms = Array(fields[1])
        // The name is the rest of the line after the inode and the padding
        // the kernel puts before it: spaces inside and at the end of it are
        // its own (only leading ones cannot be told from the padding).
        let name = fields.count > 5
            ? String(decoding: line[fields[5].startIndex...].drop { $0 == UInt8(ascii: " ") }, as: UTF8.self) : ""
        return Mapping(start: start, end: end,
                       readable: perms.count > 0 && perms[0] == UInt8(ascii: "r"),
                       writable: perms.count > 1 && perms[1] == UInt8(ascii: "w"),
                       shared: perms.count > 3 && perms[3] == UInt8(ascii: "s"),
                       file: fileKey(device: fields[3], inode: fields[4]),
                       pageSize: basePageSize, noFolio: false, pmdMappedBytes: 0, name: name)
    }

    /// "08:01" and "1234" of a maps line; nil for anonymous memory (inode 0).
    package static func fileKey(device: ArraySlice<UInt8>, inode: ArraySlice<UInt8>) -> FileKey? {
        guard let ino = UInt64(String(decoding: inode, as: UTF8.self)), ino != 0 else { return nil }
        let parts = device.split(separator: UInt8(ascii: ":"))
        guard parts.count == 2, let major = UInt32(String(decoding: parts[0], as: UTF8.self), radix: 16),
              let minor = UInt32(String(decoding: parts[1], as: UTF8.self), radix: 16) else { return nil }
        return FileKey(major: major, minor: minor, inode: ino)
    }

    /// The mappings of `all` (in address order) that tile `span`; the first
    /// hole instead, when there is one.  Text read in pieces (maps, smaps)
    /// while other threads split and merge VMAs can show a VMA again, grown
    /// back over what was printed before it: only what is new of it is kept,
    /// so the mappings tile the span without overlapping.
    package static func tiling(_ all: ArraySlice<Mapping>, _ span: Range<UInt64>) -> Tiling {
        var out: [Mapping] = []
        var addr = span.lowerBound
        for var m in all where m.end > addr {
            guard addr < span.upperBound else { break }
            if m.start > addr { return .hole(addr..<min(m.start, span.upperBound)) }
            if let last = out.last, m.start < last.end { m.start = last.end }
            out.append(m)
            addr = m.end
        }
        if addr < span.upperBound { return .hole(addr..<span.upperBound) }
        return .mapped(out)
    }
}

/// What lies under a span of addresses: mappings tiling it, or the first
/// hole in it.
package enum Tiling: Equatable, Sendable {
    case mapped([Mapping])
    case hole(Range<UInt64>)
}

/// /proc/PID/smaps, one line at a time: the VMAs that meet [low, high), each
/// with the counts the readers use, passed on as each ends.  The lines of
/// VMAs below `low` are skipped unparsed (in a pin's read they are most of
/// the file), and reading stops at the first VMA at or past `high`.  smaps
/// is read in pieces while other threads split and merge VMAs, so the kernel
/// can list a VMA again, grown back over what it printed before: only what is
/// new of it is passed on (its counts are the whole VMA's).
package struct SmapsReader {
    private let low: UInt64, high: UInt64
    /// The start of the first VMA at or past `high` (nil: none yet, or the
    /// reader was stopped before it).
    package private(set) var following: UInt64?
    private var current = VMAStats(mapping: Mapping(start: 0, end: 0, readable: false, writable: false, shared: false,
                                                    pageSize: basePageSize, noFolio: false, pmdMappedBytes: 0, name: ""))
    private var reading = false
    private var stopped = false
    private var delivered: UInt64 = 0

    package init(from low: UInt64 = 0, to high: UInt64 = .max) {
        self.low = low
        self.high = high
    }

    /// Takes one line; `deliver` gets each finished VMA and returns false to
    /// stop.  Returns false once no more lines are wanted.
    package mutating func take(_ line: ArraySlice<UInt8>, _ deliver: (VMAStats) -> Bool) -> Bool {
        if let bounds = MapsText.bounds(line) {
            guard finish(deliver) else { return false }
            guard bounds.start < high else {
                following = bounds.start
                return false
            }
            guard bounds.end > low, let m = MapsText.mapping(line) else { return true }
            current = VMAStats(mapping: m)
            reading = true
            return true
        }
        guard reading, let first = line.first else { return true }
        var found: (key: [UInt8], field: Field)?
        for i in Self.byFirstByte[Int(first)] where line.starts(with: Self.fields[i].key) {
            found = Self.fields[i]
            break
        }
        guard let field = found else { return true }
        let value = line.dropFirst(field.key.count).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        switch field.field {
        case .kernelPageSize: current.mapping.pageSize = Self.kb(value)
        case .rss: current.rss = Self.kb(value)
        case .pmdMapped:
            current.pmdMapped &+= Self.kb(value)
            current.mapping.pmdMappedBytes &+= Self.kb(value)
        case .hugetlb: current.hugetlb &+= Self.kb(value)
        case .locked: current.locked = Self.kb(value)
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

    /// At the end of the file: the last VMA.  Returns `following`.
    package mutating func end(_ deliver: (VMAStats) -> Bool) -> UInt64? {
        if !stopped { _ = finish(deliver) }
        return stopped ? nil : following
    }

    private mutating func finish(_ deliver: (VMAStats) -> Bool) -> Bool {
        guard reading else { return true }
        reading = false
        guard current.mapping.end > delivered else { return true }
        current.mapping.start = max(current.mapping.start, delivered)
        delivered = current.mapping.end
        if !deliver(current) { stopped = true }
        return !stopped
    }

    /// "1234 kB": the digits, without allocating (a big process's smaps has
    /// hundreds of thousands of these lines).
    private static func kb(_ f: ArraySlice<UInt8>) -> UInt64 {
        var v: UInt64 = 0
        for c in f {
            guard c >= 0x30 && c <= 0x39 else { break }
            v = v &* 10 &+ UInt64(c - 0x30)
        }
        return v &* 1024
    }

    private enum Field { case kernelPageSize, rss, pmdMapped, hugetlb, locked, thpEligible, vmFlags }
    /// The lines of an smaps entry the readers use; the rest are passed by.
    private static let fields: [(key: [UInt8], field: Field)] = {
        let named: [(String, Field)] = [
            ("Rss:", .rss), ("AnonHugePages:", .pmdMapped), ("ShmemPmdMapped:", .pmdMapped),
            ("FilePmdMapped:", .pmdMapped), ("Shared_Hugetlb:", .hugetlb), ("Private_Hugetlb:", .hugetlb),
            ("Locked:", .locked), ("THPeligible:", .thpEligible), ("KernelPageSize:", .kernelPageSize),
            ("VmFlags:", .vmFlags),
        ]
        return named.map { (key: Array($0.0.utf8), field: $0.1) }
    }()
    /// For each first byte, the indices of `fields` starting with it.
    private static let byFirstByte: [[Int]] = {
        var table = [[Int]](repeating: [], count: 256)
        for (i, f) in fields.enumerated() { table[Int(f.key[0])].append(i) }
        return table
    }()
}

/// One slot of an io_uring's buffer table that holds a buffer, as fdinfo
/// lists it.
package struct ListedBuffer: Equatable, Sendable {
    package var index: Int
    package var addr: UInt64
    package var len: UInt64

    package init(index: Int, addr: UInt64, len: UInt64) {
        self.index = index
        self.addr = addr
        self.len = len
    }
}

/// An io_uring's /proc/PID/fdinfo/FD, one line at a time: "UserBufs:\tN",
/// then one line per slot, "I: 0xaddr/len" (an empty slot shows "<none>" or
/// the address ~0).  The kernel lists the slots only when it gets the ring's
/// lock at once (before 6.16 it prints the count without them, since then
/// nothing): `listed` is nil for a busy ring, to be read again.
package struct FdinfoReader {
    private var buffers: [ListedBuffer] = []
    private var inTable = false
    private var count = 0, lines = 0
    private static let key = Array("UserBufs:".utf8)

    package init() {}

    /// Takes one line; returns false past the table.
    package mutating func take(_ line: ArraySlice<UInt8>) -> Bool {
        if line.starts(with: Self.key) {
            inTable = true
            count = Int(String(decoding: line.dropFirst(Self.key.count).filter { $0 >= 0x30 && $0 <= 0x39 },
                               as: UTF8.self)) ?? 0
            return true
        }
        guard inTable else { return true }
        let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let c = trimmed.firstIndex(of: UInt8(ascii: ":")),
              let slot = Int(String(decoding: trimmed[..<c], as: UTF8.self)) else { return false }
        lines += 1
        let rest = trimmed[trimmed.index(after: c)...].drop { $0 == UInt8(ascii: " ") }
        guard rest.starts(with: Array("0x".utf8)), let s = rest.firstIndex(of: UInt8(ascii: "/")),
              let addr = UInt64(String(decoding: rest[rest.index(rest.startIndex, offsetBy: 2)..<s], as: UTF8.self),
                                radix: 16),
              let len = UInt64(String(decoding: rest[rest.index(after: s)...].prefix { $0 >= 0x30 && $0 <= 0x39 },
                                      as: UTF8.self)),
              addr != UInt64.max else { return true }
        buffers.append(ListedBuffer(index: slot, addr: addr, len: len))
        return true
    }

    /// The buffers the table holds, or nil when the kernel did not list them
    /// (the ring was busy, or has no table line at all).
    package var listed: [ListedBuffer]? { inTable && (count == 0 || lines > 0) ? buffers : nil }
}

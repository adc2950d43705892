// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// What the system and this process are set to: THP modes, hugetlb page
/// sizes, whether io_uring is allowed -- sysfs, procfs and a probe or two.
package enum SystemSettings {
    /// How THP is enabled for this process now (the system's mode, and
    /// PR_SET_THP_DISABLE); `.always` when it cannot be read, which only
    /// makes callers more careful.
    package static func thpMode() -> THPMode {
        if phyr_shim_thp_disabled() == 1 { return .never }
        return systemTHPMode()
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

    /// kernel.io_uring_disabled: 0 allowed, 1 only for root and
    /// kernel.io_uring_group, 2 for nobody; nil when it cannot be read.
    package static func ioUringDisabled() -> UInt64? {
        readNumber("/proc/sys/kernel/io_uring_disabled")
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
    package static func hugetlbPageSize(_ m: Mapping) -> UInt64? {
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
        var size: UInt64?
        _ = try? Smaps.read(from: m.start, to: m.end) { size = $0.mapping.pageSize; return false }
        guard let size, size > basePageSize else { return nil }
        return size
    }
}

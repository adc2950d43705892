import CPhyr
import Glibc

/// mlock/munlock and populating, over page-aligned ranges.
enum Locker {
    @inline(__always) private static func pointer(_ a: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(a))
    }

    static func lock(_ r: Range<UInt64>) throws(Errno) {
        _ = try syscallRetrying { mlock(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound)) }
    }

    /// Errors are ignored: the only one possible is memory the caller unmapped
    /// under a live pin, which has no lock left to release.
    static func unlock(_ r: Range<UInt64>) {
        _ = try? syscallRetrying { munlock(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound)) }
    }

    /// Faults every page of `r` in, by write faults when `write`.  `r` lies in
    /// one mapping, which permits what is asked: touching is the fallback, and
    /// a touch the mapping forbids would kill the process.
    static func populate(_ r: Range<UInt64>, write: Bool) throws(Errno) {
        let len = Int(r.upperBound - r.lowerBound)
        if KernelFeatures.shared.populateAdvice {
            let advice = write ? PHYR_MADV_POPULATE_WRITE : PHYR_MADV_POPULATE_READ
            _ = try syscallRetrying { madvise(pointer(r.lowerBound), len, advice) }
            return
        }
        guard let p = pointer(r.lowerBound) else { return }
        if write {
            phyr_shim_touch_write(p, len, Int(basePageSize))
        } else {
            phyr_shim_touch_read(p, len, Int(basePageSize))
        }
    }

    /// RLIMIT_MEMLOCK's soft limit, or nil when unlimited.
    static func lockLimit() -> UInt64? {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max else { return nil }
        return UInt64(rl.rlim_cur)
    }

    /// VmLck from /proc/self/status: what this process already has locked.
    static func lockedBytes() -> UInt64? {
        guard let text = try? readWholeFile("/proc/self/status") else { return nil }
        for line in text.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("VmLck:".utf8)) {
            let f = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
            if f.count >= 2, let kb = UInt64(String(decoding: f[1], as: UTF8.self)) { return kb * 1024 }
        }
        return nil
    }
}

// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// mlock/munlock, the lock probe and populating, over page-aligned ranges.
package enum Locker {
    @inline(__always) private static func pointer(_ a: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(a))
    }

    /// Locks `r` with mlock(2), which faults in what is missing under the lock
    /// (write faults for private writable memory), then marks the lock as
    /// libphyr's.  The mark is VM_LOCKONFAULT (mlock2(MLOCK_ONFAULT), "lf" in
    /// smaps): it has no effect on memory whose pages are all present, and it
    /// travels with the memory through mremap(2), so locks libphyr made can be
    /// found wherever the caller moved them (see `markedLocks`).
    package static func lock(_ r: Range<UInt64>) throws(Errno) {
        _ = try syscallRetrying { mlock(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound)) }
        try mark(r)
    }

    /// mlock2(MLOCK_ONFAULT) of memory libphyr already counts as locked: a
    /// flag change and no page walk where the kernel still holds the lock;
    /// where it does not (the memory was unmapped and mapped anew under a
    /// live range, or is a forked child's), it locks every present page again.
    package static func mark(_ r: Range<UInt64>) throws(Errno) {
        _ = try shimRetrying { phyr_shim_mlock2(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound), PHYR_MLOCK_ONFAULT) }
    }

    /// munlock(2).  Fails with ENOMEM, having unlocked only what lies before
    /// it, where `r` has a hole.
    package static func unlock(_ r: Range<UInt64>) throws(Errno) {
        _ = try syscallRetrying { munlock(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound)) }
    }

    /// madvise(MADV_DONTFORK), or MADV_DOFORK to undo it: a VMA flag, so
    /// the kernel splits VMAs at both ends of `r`.
    package static func dontFork(_ r: Range<UInt64>, _ dontFork: Bool) throws(Errno) {
        _ = try syscallRetrying {
            madvise(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound), dontFork ? MADV_DONTFORK : MADV_DOFORK)
        }
    }

    /// madvise(MADV_COLLAPSE) of 2 MiB-aligned `r`: transparent huge pages
    /// made synchronously, the small pages' contents copied in (6.1+),
    /// taking the mmap lock for writing once per extent.  EAGAIN (a page
    /// locked, isolated or pinned elsewhere) is tried once more where `r` is
    /// one extent: a pinned page answers it every time, and each try drains
    /// every CPU's LRU caches.  Every other failure is the caller's.
    package static func collapse(_ r: Range<UInt64>) throws(Errno) {
        let call = { () throws(Errno) in
            _ = try syscallRetrying { madvise(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound), PHYR_MADV_COLLAPSE) }
        }
        do throws(Errno) { try call() } catch where error.code == EAGAIN && r.count == 1 << pmdPageShift {
            try call()
        }
    }

    package enum LockState: Equatable { case someLocked, noneLocked, noneLockedWithHoles }

    /// Whether any page of `r` is locked, without changing anything:
    /// msync(MS_INVALIDATE) answers EBUSY for a range with a locked part, and
    /// does nothing else on Linux (only MS_SYNC writes anything back).
    package static func probe(_ r: Range<UInt64>) -> LockState {
        do {
            _ = try syscallRetrying { msync(pointer(r.lowerBound), Int(r.upperBound - r.lowerBound), MS_INVALIDATE) }
            return .noneLocked
        } catch {
            return error.code == EBUSY ? .someLocked : .noneLockedWithHoles
        }
    }

    /// Whether mlockall(MCL_FUTURE) is in force: a page mapped now comes out
    /// locked.  Then memory the caller moved is locked by the caller's own
    /// policy, and libphyr leaves it so.
    package static func everyNewMappingLocked() -> Bool {
        let page = Int(basePageSize)
        guard let p = mmap(nil, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != mapFailed else { return false }
        defer { munmap(p, page) }
        let a = UInt64(UInt(bitPattern: p))
        return probe(a..<(a + basePageSize)) == .someLocked
    }

    /// Whether every page of `r` is mapped and locked: one probe per VMA, since
    /// VM_LOCKED belongs to a VMA as a whole.
    package static func whollyLocked(_ r: Range<UInt64>) -> Bool {
        guard let vmas = try? Mappings.mappedParts(r, merged: false) else { return false }
        var at = r.lowerBound
        for vma in vmas {
            guard vma.lowerBound == at, probe(vma) == .someLocked else { return false }
            at = vma.upperBound
        }
        return at == r.upperBound
    }

    /// Faults `r` in, by write faults when `write`, without ever raising a
    /// signal in the caller.  `r` lies in mapping `m`, which permits what is
    /// asked.
    ///
    /// MADV_POPULATE_* (5.14) faults every page and reports what cannot be
    /// faulted in as EFAULT.  Older kernels have no such call, and a plain
    /// load or store could raise SIGBUS or SIGSEGV, so the faults are made
    /// from inside the kernel (`phyr_shim_probe_read`,
    /// `phyr_shim_fault_in_writable`).  Memory that will be mlocked needs
    /// only enough of them to make its huge pages: mlock(2) faults in the
    /// rest itself, by write faults where the mapping is private and
    /// writable.  Private anonymous memory is never read first (that would
    /// map the huge zero page, split on the write by older kernels).  hugetlb
    /// memory is not mlocked, so each of its pages is faulted; private
    /// hugetlb memory gets no write fault (breaking copy-on-write there may
    /// need a page the pool does not have).
    package static func populate(_ r: Range<UInt64>, in m: Mapping, write: Bool) throws(Errno) {
        let len = Int(r.upperBound - r.lowerBound)
        guard let p = pointer(r.lowerBound) else { return }
        if KernelFeatures.shared.populateAdvice {
            let advice = write ? PHYR_MADV_POPULATE_WRITE : PHYR_MADV_POPULATE_READ
            _ = try syscallRetrying { madvise(p, len, advice) }
            return
        }
        if m.isHugetlb {
            _ = try shimRetrying { phyr_shim_probe_read(p, len, Int(m.pageSize)) }
            return
        }
        let anonymous = !m.fileBacked && !m.shared
        if !anonymous {
            // Files and shared memory: every page, so one past the end of its
            // file is reported here, by name, rather than by mlock.
            _ = try shimRetrying { phyr_shim_probe_read(p, len, Int(basePageSize)) }
        }
        if write && !m.shared {
            _ = try shimRetrying { phyr_shim_fault_in_writable(p, len, 1 << Int(pmdPageShift)) }
        } else if anonymous {
            _ = try shimRetrying { phyr_shim_probe_read(p, len, 1 << Int(pmdPageShift)) }
        }
    }

    /// RLIMIT_MEMLOCK's soft limit, or nil when unlimited.
    package static func lockLimit() -> UInt64? {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max else { return nil }
        return UInt64(rl.rlim_cur)
    }

    /// VmLck from /proc/self/status: what this process already has locked.
    package static func lockedBytes() -> UInt64? {
        procField("/proc/self/status", "VmLck:").map { $0 * 1024 }
    }

    /// Whether CAP_IPC_LOCK lifts RLIMIT_MEMLOCK for this thread.
    package static var mayLockPastLimit: Bool { phyr_shim_has_capability(Int32(PHYR_CAP_IPC_LOCK)) != 0 }

    /// vm.max_map_count and how many mappings the process has, when both can
    /// be read: mlock fails with ENOMEM when a split would pass the limit.
    package static func mappingBudget() -> (count: UInt64, limit: UInt64)? {
        guard let limit = readNumber("/proc/sys/vm/max_map_count") else { return nil }
        var count: UInt64 = 0
        guard (try? forEachLine("/proc/self/maps") { _ in count += 1; return true }) != nil else { return nil }
        return (count, limit)
    }

    /// Whether memory is short for `need` more bytes: the system's
    /// MemAvailable, or the headroom under this process's memory cgroup (in a
    /// container, a fault past its limit fails with ENOMEM).
    package static func memoryShort(for need: UInt64) -> Bool {
        let margin = 2 * need + (64 << 20)
        if let kb = procField("/proc/meminfo", "MemAvailable:"), kb * 1024 < margin { return true }
        var limits: [(limit: String, usage: String)] = []
        try? forEachLine("/proc/self/cgroup") { line in
            let text = String(decoding: line, as: UTF8.self)
            let f = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { return true }
            if f[1].isEmpty {  // v2
                limits.append(("/sys/fs/cgroup\(f[2])/memory.max", "/sys/fs/cgroup\(f[2])/memory.current"))
            } else if f[1].split(separator: ",").contains("memory") {  // v1
                let dir = "/sys/fs/cgroup/memory\(f[2])"
                limits.append(("\(dir)/memory.limit_in_bytes", "\(dir)/memory.usage_in_bytes"))
            }
            return true
        }
        // "max" (v2) reads as no number; v1 says no limit with a huge one.
        return limits.contains { l in
            guard let max = readNumber(l.limit), let used = readNumber(l.usage) else { return false }
            return used &+ margin > max
        }
    }

    /// Free pages of the hugetlb pool of `pageSize`, when sysfs says.
    package static func freeHugetlbPages(_ pageSize: UInt64) -> UInt64? {
        readNumber("/sys/kernel/mm/hugepages/hugepages-\(pageSize / 1024)kB/free_hugepages")
    }
}

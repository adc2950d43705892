// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// The io_uring files libphyr holds: its own duplicate of each ring it has
/// buffers in, and how to tell whether a caller's descriptor still names
/// that ring (ring fd numbers come back after io_uring_queue_exit).
package enum RingFiles {
    /// The inode behind a descriptor.  The duplicate keeps its ring's file
    /// open, so no other file can take that inode number meanwhile.
    package struct Identity: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    static func identity(_ fd: Int32) throws(Errno) -> Identity {
        var st = stat()
        _ = try syscallRetrying { fstat(fd, &st) }
        return Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// A close-on-exec duplicate of `fd`.
    static func duplicate(_ fd: Int32) throws(Errno) -> Int32 {
        try syscallRetrying { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Whether each io_uring has an inode of its own, as Linux 5.12+ gives
    /// it (a "secure" anonymous inode), rather than the one anonymous inode
    /// an eventfd gets.  Asked once, with the first ring libphyr sees.
    static func inodesTellRingsApart(_ ringFd: Int32) -> Bool {
        let features = KernelFeatures.shared
        switch features.ringInodes.load(ordering: .relaxed) {
        case 1: return true
        case 2: return false
        default: break
        }
        // Without an answer (no descriptor to spare, say), ask kcmp this time
        // and the probe again next time.
        guard let ring = try? identity(ringFd), let anon = try? shimRetrying({ phyr_shim_anonymous_file() }) else {
            return false
        }
        defer { close(anon) }
        guard let shared = try? identity(anon) else { return false }
        let answer = shared != ring
        features.ringInodes.store(answer ? 1 : 2, ordering: .relaxed)
        features.report("each io_uring has its own inode: \(answer ? "yes" : "no (kcmp tells rings apart)")")
        return answer
    }

    /// Whether `fd` of the process is an io_uring: its /proc/PID/fd link says so.
    static func isIoUring(_ fd: Int32, in files: ProcFiles = .shared) -> Bool {
        var buf = [CChar](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { b -> Int in
            guard let base = b.baseAddress else { return -1 }
            return readlink(files.path("fd/\(fd)"), base, b.count - 1)
        }
        guard n > 0 else { return false }
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[io_uring]"
    }

    /// The ring a descriptor of the process names, by its inode (Linux
    /// 5.12+ gives each io_uring one of its own), through the magic link.
    package static func identity(_ fd: Int32, in files: ProcFiles) -> Identity? {
        var st = stat()
        guard stat(files.path("fd/\(fd)"), &st) == 0 else { return nil }
        return Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Every io_uring descriptor of the process, ascending.
    package static func ioUrings(in files: ProcFiles) throws(Errno) -> [Int32] {
        guard let dir = opendir(files.path("fd")) else { throw Errno(code: errno) }
        defer { closedir(dir) }
        var fds: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), isIoUring(fd, in: files) else { continue }
            fds.append(fd)
        }
        return fds.sorted()
    }

    /// Whether the ring was open when this process was forked: then it is the
    /// parent's ring as well (the fork noted the io_urings it copied).
    static func inheritedAcrossFork(_ ring: Identity) -> Bool {
        phyr_shim_ring_inherited(ring.device, ring.inode) != 0
    }

    /// kcmp(KCMP_FILE): whether two descriptors of this process name one open
    /// file; nil when the kernel will not say (kcmp is often denied inside
    /// containers).  Only for kernels whose rings share an inode.
    static func sameFile(_ a: Int32, _ b: Int32) -> Bool? {
        let rc = phyr_shim_same_file(a, b)
        return rc < 0 ? nil : rc == 1
    }
}

extension RingFiles {
    /// One slot of a ring's buffer table that holds a buffer.
    package struct Buffer: Equatable, Sendable {
        package var index: Int
        package var addr: UInt64
        package var len: UInt64
    }

    /// The buffers of `fd`'s table as the kernel lists them in
    /// /proc/PID/fdinfo/FD ("UserBufs:" and then one line per slot,
    /// "N: 0xaddr/len"; an empty slot shows "<none>" or the address ~0);
    /// nil when the file does not list them -- the kernel prints the table
    /// only when it gets the ring's lock at once, so a busy ring is read
    /// again for up to half a second first.
    package static func buffers(_ fd: Int32, in files: ProcFiles = .shared) -> [Buffer]? {
        // A registration of 1 GiB of 4 KiB pages holds the lock for 250 ms.
        for attempt in 0..<100 {
            if let found = readBuffers(fd, in: files) { return found }
            if attempt > 2 { usleep(5000) }
        }
        return nil
    }

    private static func readBuffers(_ fd: Int32, in files: ProcFiles) -> [Buffer]? {
        var out: [Buffer] = []
        var inBuffers = false
        let colon = UInt8(ascii: ":"), slash = UInt8(ascii: "/")
        do throws(Errno) {
            try forEachLine(files.path("fdinfo/\(fd)")) { line in
                if line.starts(with: Array("UserBufs:".utf8)) { inBuffers = true; return true }
                guard inBuffers else { return true }
                let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard let c = trimmed.firstIndex(of: colon), let slot = Int(String(decoding: trimmed[..<c], as: UTF8.self)) else {
                    return false  // past the table
                }
                let rest = trimmed[trimmed.index(after: c)...].drop { $0 == UInt8(ascii: " ") }
                guard rest.starts(with: Array("0x".utf8)), let s = rest.firstIndex(of: slash),
                      let addr = UInt64(String(decoding: rest[rest.index(rest.startIndex, offsetBy: 2)..<s], as: UTF8.self), radix: 16),
                      let len = UInt64(String(decoding: rest[rest.index(after: s)...].prefix { $0 >= 0x30 && $0 <= 0x39 },
                                              as: UTF8.self)),
                      addr != UInt64.max else { return true }
                out.append(Buffer(index: slot, addr: addr, len: len))
                return true
            }
        } catch {
            return nil
        }
        return inBuffers ? out : nil
    }

    /// The slots of `fd`'s buffer table that hold a buffer.
    static func bufferSlots(_ fd: Int32) -> Set<Int>? {
        buffers(fd).map { Set($0.map(\.index)) }
    }
}

// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// The io_uring files libphyr holds: its own duplicate of each ring it has
/// buffers in, and how to tell whether a caller's descriptor still names
/// that ring (ring fd numbers come back after io_uring_queue_exit).
enum RingFiles {
    /// The inode behind a descriptor.  The duplicate keeps its ring's file
    /// open, so no other file can take that inode number meanwhile.
    struct Identity: Hashable, Sendable {
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

    /// Whether `fd` is an io_uring: its /proc/self/fd link says so.
    static func isIoUring(_ fd: Int32) -> Bool {
        var buf = [CChar](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { b -> Int in
            guard let base = b.baseAddress else { return -1 }
            return readlink("/proc/self/fd/\(fd)", base, b.count - 1)
        }
        guard n > 0 else { return false }
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[io_uring]"
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
    /// The slots of `fd`'s buffer table that hold a buffer, as the kernel
    /// lists them in /proc/self/fdinfo ("UserBufs:" and then one line per
    /// slot, "N: 0xaddr/len", or "N: <none>" for an empty one).
    static func bufferSlots(_ fd: Int32) -> Set<Int>? {
        var slots = Set<Int>()
        var inBuffers = false
        let colon = UInt8(ascii: ":")
        do throws(Errno) {
            try forEachLine("/proc/self/fdinfo/\(fd)") { line in
                if line.starts(with: Array("UserBufs:".utf8)) { inBuffers = true; return true }
                guard inBuffers else { return true }
                let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard let c = trimmed.firstIndex(of: colon), let slot = Int(String(decoding: trimmed[..<c], as: UTF8.self)) else {
                    return false  // past the table
                }
                let rest = trimmed[trimmed.index(after: c)...].drop { $0 == UInt8(ascii: " ") }
                if rest.starts(with: Array("0x".utf8)) && !rest.starts(with: Array("0xffffffffffffffff/".utf8)) {
                    slots.insert(slot)
                }
                return true
            }
        } catch {
            return nil
        }
        return inBuffers ? slots : nil
    }
}

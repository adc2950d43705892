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
        package var device: UInt64
        package var inode: UInt64
    }

    static func identity(_ fd: Int32) throws(Errno) -> Identity {
        var st = stat()
        _ = try syscallRetrying { fstat(fd, &st) }
        return Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// A close-on-exec duplicate of `fd`, at a high number (see `movedHigh`).
    static func duplicate(_ fd: Int32) throws(Errno) -> Int32 {
        movedHigh(try syscallRetrying { fcntl(fd, F_DUPFD_CLOEXEC, 0) })
    }

    /// `fd` moved to a high number, where a program's own files seldom are
    /// (the old number closed): a kept descriptor there is less often one a
    /// program closes and reopens as something else.
    static func movedHigh(_ fd: Int32) -> Int32 {
        phyr_shim_kept_fd_moved_high(fd)
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// What a descriptor libphyr keeps open beyond a call is.
    enum Kept {
        case holder, ring, proc
        var code: Int32 {
            switch self {
            case .holder: PHYR_KEPT_HOLDER
            case .ring: PHYR_KEPT_RING
            case .proc: PHYR_KEPT_PROC
            }
        }
    }

    /// Records `fd` as kept: a forked child closes its copy at once (the
    /// atfork handler, Sources/CPhyr/fork.c), and remembers a kept `.ring`
    /// as its parent's.  The caller closes `fd` when this throws.
    static func keep(_ fd: Int32, as kind: Kept) throws(Errno) {
        _ = try shimRetrying { phyr_shim_kept_fd_add(fd, kind.code) }
    }

    /// Closes a kept descriptor, if it still names what libphyr opened.
    static func closeKept(_ fd: Int32) {
        phyr_shim_kept_fd_close(fd)
    }

    /// Forgets kept descriptor `fd`, which named `file`, now no longer
    /// libphyr's to close (the program closed it behind libphyr's back; its
    /// number may be anyone's).
    static func forgetKept(_ fd: Int32, naming file: Identity) {
        phyr_shim_kept_fd_forget(fd, file.device, file.inode)
    }

    /// A descriptor of this process that names ring `identity` (the
    /// program's own, say), found by looking at every descriptor: for the
    /// rare call that lost libphyr's duplicate.
    static func descriptor(naming ring: Identity) -> Int32? {
        guard let names = try? directoryEntries("/proc/self/fd") else { return nil }
        return names.lazy.compactMap { Int32($0) }.first { (try? identity($0)) == ring }
    }

    /// Whether `fd` still names `identity`: a program may close a descriptor
    /// libphyr keeps (a daemon closing every fd), and the number go to any
    /// file it opens next.
    static func still(_ fd: Int32, names identity: Identity) -> Bool {
        (try? self.identity(fd)) == identity
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

    /// The ring a descriptor of the process names, by its inode, through
    /// the magic link; nil where the inode does not tell rings apart (before
    /// 5.12 every io_uring shares the one anonymous inode).
    package static func identity(_ fd: Int32, in files: ProcFiles) -> Identity? {
        var st = stat()
        guard stat(files.path("fd/\(fd)"), &st) == 0 else { return nil }
        let id = Identity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        return id == sharedAnonymousInode ? nil : id
    }

    /// The inode every anonymous file without one of its own shares.
    private static let sharedAnonymousInode: Identity? = {
        guard let anon = try? shimRetrying({ phyr_shim_anonymous_file() }) else { return nil }
        defer { close(anon) }
        return try? identity(anon)
    }()

    /// Every io_uring descriptor of the process, ascending.
    package static func ioUrings(in files: ProcFiles) throws(Errno) -> [Int32] {
        try directoryEntries(files.path("fd")).compactMap { Int32($0) }.filter { isIoUring($0, in: files) }.sorted()
    }

    /// Whether the ring is one an ancestor had a buffer table of libphyr's in
    /// when it forked this process: its table is the ancestor's.
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
    /// /proc/PID/fdinfo/FD ("UserBufs:\tN" and then one line per slot,
    /// "I: 0xaddr/len"; an empty slot shows "<none>" or the address ~0);
    /// nil when the file cannot be read or does not list them.  The kernel
    /// lists the slots only when it gets the ring's lock at once (before
    /// 6.16 it prints the count without them, since then nothing), so a busy
    /// ring is read again, for up to `patience` seconds.
    package static func buffers(_ fd: Int32, in files: ProcFiles = .shared, patience: Double = 0) -> [Buffer]? {
        let tries = max(1, Int(patience / 0.005))
        for attempt in 0..<tries {
            switch readBuffers(fd, in: files) {
            case .listed(let found): return found
            case .unreadable: return nil
            case .busy: if attempt + 1 < tries { usleep(5000) }
            }
        }
        return nil
    }

    private enum Listing { case listed([Buffer]), busy, unreadable }

    private static func readBuffers(_ fd: Int32, in files: ProcFiles) -> Listing {
        var out: [Buffer] = []
        var inBuffers = false
        var count = 0, lines = 0
        let colon = UInt8(ascii: ":"), slash = UInt8(ascii: "/")
        let key = Array("UserBufs:".utf8)
        do throws(Errno) {
            try forEachLine(files.path("fdinfo/\(fd)")) { line in
                if line.starts(with: key) {
                    inBuffers = true
                    count = Int(String(decoding: line.dropFirst(key.count).filter { $0 >= 0x30 && $0 <= 0x39 },
                                       as: UTF8.self)) ?? 0
                    return true
                }
                guard inBuffers else { return true }
                let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard let c = trimmed.firstIndex(of: colon), let slot = Int(String(decoding: trimmed[..<c], as: UTF8.self)) else {
                    return false  // past the table
                }
                lines += 1
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
            return .unreadable
        }
        return inBuffers && (count == 0 || lines > 0) ? .listed(out) : .busy
    }

    /// The slots of `fd`'s buffer table that hold a buffer: read once (the
    /// probe's scratch ring is never busy).
    static func bufferSlots(_ fd: Int32) -> Set<Int>? {
        buffers(fd).map { Set($0.map(\.index)) }
    }
}

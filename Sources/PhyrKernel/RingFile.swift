// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// Which io_uring a descriptor names: the inode behind it (every io_uring
/// has one of its own since Linux 5.12; libphyr needs 5.13).  Stays true
/// while the ring is open, and tells a ring from a new one behind a reused
/// descriptor number.
package struct RingIdentity: Hashable, Sendable {
    package var device: UInt64
    package var inode: UInt64

    /// The identity of what descriptor `fd` names.
    package static func of(_ fd: Int32) throws(Errno) -> RingIdentity {
        var st = stat()
        _ = try syscallRetrying { fstat(fd, &st) }
        return RingIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Whether an ancestor had a buffer table of libphyr's in this ring when
    /// it forked this process: the table is the ancestor's (fork.c noted it).
    package var inheritedAcrossFork: Bool { phyr_shim_ring_inherited(device, inode) != 0 }

    /// A descriptor of this process that names this ring (the program's
    /// own, say), found by looking at every descriptor: for the rare call
    /// that lost libphyr's duplicate.
    package func anyDescriptor() -> Int32? {
        guard let names = try? directoryEntries("/proc/self/fd") else { return nil }
        return names.lazy.compactMap { Int32($0) }.first { (try? RingIdentity.of($0)) == self }
    }
}

/// An io_uring descriptor libphyr keeps beyond a call: a ring of its own
/// (holding long-term pins) or its duplicate of a caller's ring (which keeps
/// the ring open for libphyr's registrations after the caller exits it).
/// Kept descriptors are close-on-exec, live at high numbers, and a forked
/// child closes its copies at once (fork.c).  A program may close one behind
/// libphyr's back (a daemon closing every descriptor) and the number go to
/// another file: every use checks `isIntact` first.
package struct RingFile: Equatable, Sendable {
    let fd: Int32
    /// What `fd` named when it was kept.
    package let identity: RingIdentity

    /// A ring of libphyr's own, with no queues mapped.
    package static func makeOwn() throws(Errno) -> RingFile {
        try kept(phyr_shim_kept_fd_moved_high(try BufferTable.makeRing()), as: PHYR_KEPT_HOLDER)
    }

    /// libphyr's duplicate of a caller's ring descriptor.
    package static func duplicate(_ callerFd: Int32) throws(Errno) -> RingFile {
        let fd = try shimRetrying { phyr_shim_dup_cloexec(callerFd) }
        return try kept(phyr_shim_kept_fd_moved_high(fd), as: PHYR_KEPT_RING)
    }

    private static func kept(_ fd: Int32, as kind: Int32) throws(Errno) -> RingFile {
        do {
            let identity = try RingIdentity.of(fd)
            _ = try shimRetrying { phyr_shim_kept_fd_add(fd, kind) }
            return RingFile(fd: fd, identity: identity)
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// Whether the descriptor still names the ring it was kept for.
    package var isIntact: Bool { (try? RingIdentity.of(fd)) == identity }

    /// Closes it, if it still names that ring.
    package func close() { phyr_shim_kept_fd_close(fd) }

    /// Lets go of it without closing: the program closed it behind
    /// libphyr's back, and the number is not libphyr's any more.
    package func forget() { phyr_shim_kept_fd_forget(fd, identity.device, identity.inode) }

    // MARK: the ring's buffer table

    /// Registers a table of `size` slots, `spans` in the first ones.
    package func registerTable(_ spans: [BufferSpan], size: Int) throws(Errno) {
        try BufferTable.create(fd, spans, size: size)
    }

    /// Puts `spans` into slots `offset...` (an empty span empties a slot);
    /// `done` counts the slots replaced, also when a later one fails.
    package func update(at offset: Int, _ spans: [BufferSpan], done: inout Int) throws(Errno) {
        try BufferTable.update(fd, offset: offset, spans, done: &done)
    }

    /// Destroys the table.  The kernel may first wait for the ring's requests
    /// in flight.
    package func unregisterTable() throws(Errno) { try BufferTable.destroy(fd) }

    /// Clones `count` buffers of `source`'s table from `sourceSlot` on into
    /// this table's slots from `slot` on (Linux 6.13+): nothing is pinned or
    /// charged again.
    package func clone(into slot: Int, from source: RingFile, at sourceSlot: Int, count: Int) throws(Errno) {
        try BufferTable.clone(into: fd, at: slot, from: source.fd, at: sourceSlot, count: count)
    }

    /// Grows the table from `size` to `newSize` slots by cloning through a
    /// scratch ring (Linux 6.13+): nothing is re-pinned.
    package func growTableByCloning(from size: Int, to newSize: Int) throws(Errno) {
        try BufferTable.growByCloning(fd, from: size, to: newSize)
    }

    /// Whether `fd` is an io_uring: its /proc/self/fd link says so.
    package static func isIoUring(_ fd: Int32) -> Bool { RingFiles.isIoUring(fd, in: .shared) }
}

/// Any process's io_uring descriptors and their buffer tables, for
/// phyr-inspect and the probes.
package enum RingFiles {
    /// Whether `fd` of the process is an io_uring: its /proc/PID/fd link says so.
    package static func isIoUring(_ fd: Int32, in files: ProcFiles) -> Bool {
        var buf = [CChar](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { b -> Int in
            guard let base = b.baseAddress else { return -1 }
            return readlink(files.path("fd/\(fd)"), base, b.count - 1)
        }
        guard n > 0 else { return false }
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[io_uring]"
    }

    /// The ring a descriptor of the process names, through the magic link.
    package static func identity(_ fd: Int32, in files: ProcFiles) -> RingIdentity? {
        var st = stat()
        guard stat(files.path("fd/\(fd)"), &st) == 0 else { return nil }
        return RingIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Every io_uring descriptor of the process, ascending.
    package static func ioUrings(in files: ProcFiles) throws(Errno) -> [Int32] {
        try directoryEntries(files.path("fd")).compactMap { Int32($0) }.filter { isIoUring($0, in: files) }.sorted()
    }

    /// The buffers of `fd`'s table as the kernel lists them in
    /// /proc/PID/fdinfo/FD; nil when the file cannot be read or does not
    /// list them.  A busy ring is read again, for up to `patience` seconds.
    package static func buffers(_ fd: Int32, in files: ProcFiles = .shared, patience: Double = 0) -> [ListedBuffer]? {
        let tries = max(1, Int(patience / 0.005))
        for attempt in 0..<tries {
            var reader = FdinfoReader()
            do throws(Errno) { try forEachLine(files.path("fdinfo/\(fd)")) { reader.take($0) } } catch { return nil }
            if let listed = reader.listed { return listed }
            if attempt + 1 < tries { usleep(5000) }
        }
        return nil
    }
}

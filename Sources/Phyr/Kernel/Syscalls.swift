import Glibc

/// An errno value, as the kernel edge reports failure to the rest of the code.
struct Errno: Error, Equatable, Sendable {
    var code: Int32
    static var current: Errno { Errno(code: errno) }
    static let interrupted = Errno(code: EINTR)
}

extension Errno: CustomStringConvertible {
    /// strerror(3)'s sentence, for messages.
    var description: String { String(cString: strerror(code)) }
}

/// Runs a libc call that answers -1 and sets errno on failure, retrying EINTR.
/// Every syscall in the library goes through here, so EINTR is decided once.
@inline(__always)
func syscallRetrying<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Errno.current
        if e != .interrupted { throw e }
    }
}

/// Reads `count` bytes at `offset`, short only at end of file.
func preadFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: UInt64) throws(Errno) -> Int {
    var done = 0
    while done < count {
        guard let off = Int(exactly: offset + UInt64(done)) else { throw Errno(code: EOVERFLOW) }
        let n = try syscallRetrying { pread(fd, buf + done, count - done, off) }
        if n == 0 { break }
        done += n
    }
    return done
}

/// The whole of a /proc text file (their sizes are not known in advance).
func readWholeFile(_ path: String) throws(Errno) -> [UInt8] {
    let fd = try syscallRetrying { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try chunk.withUnsafeMutableBytes { buf in
            Result { () throws(Errno) -> Int in try syscallRetrying { read(fd, buf.baseAddress, buf.count) } }
        }.get()
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

// SPDX-License-Identifier: MIT
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
/// Every libc system call in the library goes through here or through
/// `shimRetrying`, so EINTR is decided in one place.
@inline(__always)
func syscallRetrying<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Errno.current
        if e != .interrupted { throw e }
    }
}

/// Runs a C shim call that answers -errno on failure, retrying EINTR.
@inline(__always)
func shimRetrying<T: SignedInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        guard let code = Int32(exactly: -r) else { throw Errno(code: EIO) }
        if code != EINTR { throw Errno(code: code) }
    }
}

/// Keeps `body`'s error typed: Array.withUnsafeMutableBytes and its kin only
/// rethrow `any Error`.
@inline(__always)
func typed<R>(_ body: () throws -> R) throws(Errno) -> R {
    do { return try body() } catch let e as Errno { throw e } catch { throw Errno(code: EIO) }
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

/// The whole of a /proc or /sys text file (their sizes are not known in advance).
func readWholeFile(_ path: String) throws(Errno) -> [UInt8] {
    let fd = try syscallRetrying { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try typed {
            try chunk.withUnsafeMutableBytes { buf in try syscallRetrying { read(fd, buf.baseAddress, buf.count) } }
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// The first number in a small text file (a sysfs or procfs value).
func readNumber(_ path: String) -> UInt64? {
    guard let text = try? readWholeFile(path) else { return nil }
    let digits = text.drop { !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        .prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    return UInt64(String(decoding: digits, as: UTF8.self))
}

/// The value after `key` on its line of a /proc "Key:  value" file.
func procField(_ text: [UInt8], _ key: String) -> UInt64? {
    let k = Array(key.utf8)
    for line in text.split(separator: UInt8(ascii: "\n")) where line.starts(with: k) {
        let f = line.dropFirst(k.count).split(omittingEmptySubsequences: true) {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t")
        }
        if let first = f.first { return UInt64(String(decoding: first, as: UTF8.self)) }
    }
    return nil
}

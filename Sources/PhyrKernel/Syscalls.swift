// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

extension Errno {
    /// The calling thread's errno.
    package static var current: Errno { Errno(code: phyr_shim_errno()) }
    package static let interrupted = Errno.EINTR
}

/// mmap(2)'s answer on failure, ((void *)-1), which Swift cannot import.
package var mapFailed: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: -1) }

/// close(2), for code inside a type that has a `close` of its own.
package func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// Runs a libc call that answers -1 and sets errno on failure, retrying EINTR.
/// Every libc system call in the library goes through here or through
/// `shimRetrying`, so EINTR is decided in one place.
@inline(__always)
package func syscallRetrying<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Errno.current
        if e != .interrupted { throw e }
    }
}

/// Runs a C shim call that answers -errno on failure, retrying EINTR.
@inline(__always)
package func shimRetrying<T: SignedInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        guard let code = Int32(exactly: -r) else { throw Errno(code: EIO) }
        if code != EINTR { throw Errno(code: code) }
    }
}

/// Reads `count` bytes at `offset`, short only at end of file.
package func preadFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: UInt64) throws(Errno) -> Int {
    var done = 0
    while done < count {
        guard let off = Int(exactly: offset + UInt64(done)) else { throw Errno(code: EOVERFLOW) }
        let n = try syscallRetrying { pread(fd, buf + done, count - done, off) }
        if n == 0 { break }
        done += n
    }
    return done
}

/// Calls `body` with each line of a text file (without its newline) until
/// it returns false, reading no further than that.  Memory stays small and
/// fixed whatever the file's size: /proc/self/smaps of a process with many
/// mappings is megabytes, and libphyr reads it when memory or mappings may
/// be running out (an allocation the system refuses is a trap in Swift).
package func forEachLine(_ path: String, _ body: (ArraySlice<UInt8>) -> Bool) throws(Errno) {
    let fd = try shimRetrying { phyr_shim_open_read(path) }
    defer { close(fd) }
    let size = 1 << 15
    var buf = [UInt8](repeating: 0, count: 2 * size)
    var kept = 0  // bytes of an unfinished line at the front of buf
    while true {
        if buf.count - kept < size { buf.append(contentsOf: repeatElement(0, count: size)) }  // a very long line
        let n = try buf.withUnsafeMutableBufferPointer { b throws(Errno) -> Int in
            try syscallRetrying { b.baseAddress.map { read(fd, $0 + kept, size) } ?? 0 }
        }
        if n == 0 {
            if kept > 0 { _ = body(buf[0..<kept]) }
            return
        }
        let end = kept + n
        // Line ends by memchr: /proc/self/maps of a process with tens of
        // thousands of mappings is megabytes, read on every pin before 6.11.
        var start = 0
        var stop = false
        buf.withUnsafeBytes { b in
            guard let base = b.baseAddress else { return }
            var at = kept  // the bytes kept from the last read hold no line end
            while at < end, let hit = memchr(base + at, 0x0A, end - at) {
                let nl = base.distance(to: UnsafeRawPointer(hit))
                if !body(buf[start..<nl]) { stop = true; return }
                start = nl + 1
                at = start
            }
        }
        if stop { return }
        kept = end - start
        if start > 0 && kept > 0 {
            buf.withUnsafeMutableBytes { b in
                guard let base = b.baseAddress else { return }
                memmove(base, base + start, kept)
            }
        }
    }
}

/// A small file, whole.
package func readFile(_ path: String) throws(Errno) -> [UInt8] {
    let fd = try shimRetrying { phyr_shim_open_read(path) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = try chunk.withUnsafeMutableBufferPointer { b throws(Errno) -> Int in
            try syscallRetrying { read(fd, b.baseAddress, b.count) }
        }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
    }
}

/// The first number in a small text file (a sysfs or procfs value).
package func readNumber(_ path: String) -> UInt64? {
    var value: UInt64?
    try? forEachLine(path) { line in
        let digits = line.drop { !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
            .prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        value = UInt64(String(decoding: digits, as: UTF8.self))
        return false
    }
    return value
}

/// The names in a directory (without "." and ".."); the errno of opening it.
package func directoryEntries(_ path: String) throws(Errno) -> [String] {
    guard let dir = opendir(path) else { throw Errno.current }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The value after `key` on its line of a /proc "Key:  value" file.
package func procField(_ path: String, _ key: String) -> UInt64? {
    let k = Array(key.utf8)
    var value: UInt64?
    try? forEachLine(path) { line in
        guard line.starts(with: k) else { return true }
        let f = line.dropFirst(k.count).split(omittingEmptySubsequences: true) {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t")
        }
        value = f.first.flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }
        return false
    }
    return value
}

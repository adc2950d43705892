// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// What a command-line tool (phyr-inspect) needs of the process it runs in.
package enum Terminal {
    /// All of `text` to `fd`, however many writes it takes, waiting where
    /// `fd` is non-blocking.
    package static func emit(_ fd: Int32, _ text: String) throws(Errno) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes = bytes.dropFirst(n)
                continue
            }
            if n == 0 { throw Errno.EIO }
            let e = Errno.current
            if e == .EAGAIN {  // EWOULDBLOCK on Linux
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, -1)
            } else if e != .interrupted {
                throw e
            }
        }
    }

    package static func exitProcess(_ code: Int32) -> Never { exit(code) }

    /// The process's arguments, from /proc/self/cmdline: the same in
    /// Embedded Swift, which has no CommandLine.
    package static var arguments: [String] {
        guard var bytes = try? readFile("/proc/self/cmdline") else { return [] }
        if bytes.last == 0 { bytes.removeLast() }  // each argument ends in a NUL
        return bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// libphyr's version, as phyr_version() gives it.
    package static var libraryVersion: String { phyr_shim_version().map { String(cString: $0) } ?? "?" }
}

extension ProcFiles {
    /// Whether the process (its /proc directory) is still there.
    package var processExists: Bool {
        var st = stat()
        return stat(directory, &st) == 0
    }
}

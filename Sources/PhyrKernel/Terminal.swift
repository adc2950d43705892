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

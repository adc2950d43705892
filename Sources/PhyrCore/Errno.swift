// SPDX-License-Identifier: MIT
/// An errno value: what the kernel answered (the kernel layer turns every
/// failed call into one), and the code libphyr answers its callers with.
/// Linux's numbers, which are its ABI (PhyrTests checks them against libc's).
package struct Errno: Error, Hashable, Sendable {
    package var code: Int32

    package init(_ code: Int32) { self.code = code }
    package init(code: Int32) { self.code = code }

    package static let EPERM = Errno(1)
    package static let ENOENT = Errno(2)
    package static let ESRCH = Errno(3)
    package static let EINTR = Errno(4)
    package static let EIO = Errno(5)
    package static let ENXIO = Errno(6)
    package static let EBADF = Errno(9)
    package static let EAGAIN = Errno(11)
    package static let ENOMEM = Errno(12)
    package static let EACCES = Errno(13)
    package static let EFAULT = Errno(14)
    package static let EBUSY = Errno(16)
    package static let EEXIST = Errno(17)
    package static let ENODEV = Errno(19)
    package static let EINVAL = Errno(22)
    package static let ENFILE = Errno(23)
    package static let EMFILE = Errno(24)
    package static let ENOTTY = Errno(25)
    package static let ENOSPC = Errno(28)
    package static let ENOSYS = Errno(38)
    package static let EOVERFLOW = Errno(75)
    package static let EOPNOTSUPP = Errno(95)

    /// strerror(3)'s sentence, for messages (glibc's words; PhyrTests checks
    /// them): the core cannot call libc, and an unknown number says itself.
    package var text: String {
        switch code {
        case 1: "Operation not permitted"
        case 2: "No such file or directory"
        case 3: "No such process"
        case 4: "Interrupted system call"
        case 5: "Input/output error"
        case 6: "No such device or address"
        case 9: "Bad file descriptor"
        case 11: "Resource temporarily unavailable"
        case 12: "Cannot allocate memory"
        case 13: "Permission denied"
        case 14: "Bad address"
        case 16: "Device or resource busy"
        case 17: "File exists"
        case 19: "No such device"
        case 22: "Invalid argument"
        case 23: "Too many open files in system"
        case 24: "Too many open files"
        case 25: "Inappropriate ioctl for device"
        case 28: "No space left on device"
        case 38: "Function not implemented"
        case 75: "Value too large for defined data type"
        case 95: "Operation not supported"
        default: "errno \(code)"
        }
    }

    /// The codes `text` names, for the test that checks them.
    package static let named: [Errno] = [
        .EPERM, .ENOENT, .ESRCH, .EINTR, .EIO, .ENXIO, .EBADF, .EAGAIN, .ENOMEM, .EACCES, .EFAULT, .EBUSY, .EEXIST, .ENODEV,
        .EINVAL, .ENFILE, .EMFILE, .ENOTTY, .ENOSPC, .ENOSYS, .EOVERFLOW, .EOPNOTSUPP,
    ]
}

extension Errno: CustomStringConvertible {
    package var description: String { text }
}

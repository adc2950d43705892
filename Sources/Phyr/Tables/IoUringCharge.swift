// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// The bytes of RLIMIT_MEMLOCK io_uring charges for libphyr's buffers, held
/// and registered alike: the kernel counts them per user, apart from mlock's
/// count, and refuses only once its own count is past the limit.  libphyr
/// checks first, to say how much and why.
enum IoUringCharge {
    /// A forked child's buffers are none of its parent's: it starts at 0.
    private static let charged = ProcessLocal(UInt64(0)) { _ in 0 }

    static func warm() { charged.withLock { _ in } }

    /// Counts `bytes` more for `what`, or throws when the limit cannot take
    /// them.
    static func reserve(_ bytes: UInt64, for what: String) throws(PhyrError) {
        guard bytes > 0 else { return }
        let limit = Locker.mayLockPastLimit ? nil : Locker.lockLimit()
        try charged.withLock { total throws(PhyrError) in
            let (new, overflow) = total.addingReportingOverflow(bytes)
            if let limit, overflow || new > limit {
                throw PhyrError(.ENOMEM, "io_uring would charge \(byteCount(bytes)) of locked memory for \(what), "
                                + "and libphyr's buffers hold \(byteCount(total)) already; RLIMIT_MEMLOCK is "
                                + "\(byteCount(limit)) (CAP_IPC_LOCK lifts it)")
            }
            total = overflow ? .max : new
        }
    }

    static func give(_ bytes: UInt64) {
        guard bytes > 0 else { return }
        charged.withLock { $0 -= min($0, bytes) }
    }

    /// io_uring refused outright: says whether the sysctl or a filter did.
    static func unavailable(_ e: Errno, doing what: String) -> PhyrError {
        switch e {
        case .EPERM, .ENOSYS, .EACCES:
            let disabled = SystemSettings.ioUringDisabled() ?? 0
            let why = disabled == 2 ? "kernel.io_uring_disabled is 2: io_uring is off for every process"
                : disabled == 1 ? "kernel.io_uring_disabled is 1: only root and kernel.io_uring_group may use io_uring"
                : e == .ENOSYS ? "io_uring is not in this kernel, or a seccomp filter hides it"
                : "a seccomp filter (or an LSM) denies io_uring"
            return PhyrError(.EOPNOTSUPP, "\(what) needs io_uring, which is unavailable (\(e)): \(why)")
        case .EMFILE, .ENFILE:
            return PhyrError(e, "\(what): no file descriptor left for an io_uring of libphyr's (\(e))")
        default:
            return PhyrError(e, "\(what) failed: \(e)")
        }
    }

    /// The refusal for a kernel that ran out of locked memory for `what`.
    static func outOfLockedMemory(_ what: String, charge: UInt64) -> PhyrError {
        var msg = "the kernel refused \(what): out of locked memory (io_uring's charge is \(byteCount(charge))"
        if let limit = Locker.lockLimit() {
            msg += ", RLIMIT_MEMLOCK is \(byteCount(limit)), and io_uring counts every buffer of this user's "
                + "processes against it"
        }
        return PhyrError(.ENOMEM, msg + ")")
    }
}

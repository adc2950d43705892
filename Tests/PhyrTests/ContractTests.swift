// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrTestSupport
import Testing
@testable import Phyr
@testable import PhyrCore
@testable import PhyrKernel

/// What the Swift side must agree on with the C header, libc and the kernel.
@Suite struct ContractTests {
    /// On a kernel with 16 or 64 KiB base pages every layout would be wrong:
    /// every pin and registration is refused, saying why.
    @Test func otherBasePagesAreRefused() {
        #expect(isNil(Pinner.refusal(forBasePage: 4096)))
        for size in [16384, 65536] {
            let refusal = Pinner.refusal(forBasePage: size)
            #expect(refusal?.errno == .EOPNOTSUPP)
            #expect(refusal?.message.contains("\(size / 1024) KiB") ?? false, "\(refusal?.message ?? "")")
        }
        #expect(KernelFeatures.shared.basePage == 4096, "this machine's own base page")
    }

    @Test func headerConstantsMatch() {
        #expect(SegmentFlags.huge.rawValue == PHYR_SEG_HUGE)
        #expect(SegmentFlags.hugetlb.rawValue == PHYR_SEG_HUGETLB)
        #expect(SegmentFlags.shared.rawValue == PHYR_SEG_SHARED)
        #expect(SegmentFlags.noFolio.rawValue == PHYR_SEG_NOFOLIO)
        #expect(PinFlag.write == PHYR_PIN_WRITE && PinFlag.phys == PHYR_PIN_PHYS && PinFlag.longterm == PHYR_PIN_LONGTERM)
        #expect(PinFlag.dontfork == PHYR_PIN_DONTFORK && PinFlag.huge == PHYR_PIN_HUGE)
        #expect(PinFlag.all == PHYR_PIN_WRITE | PHYR_PIN_PHYS | PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK | PHYR_PIN_HUGE)
        #expect(physUnknown == PHYR_PHYS_UNKNOWN)
        #expect(MemoryLayout<phyr_seg>.size == 32)
        #expect(MemoryLayout<phyr_pm_scan_arg>.size == 96)
        #expect(MemoryLayout<phyr_procmap_query>.size == 104)
    }

    /// The core's errno values and sentences are libc's.
    @Test func errnoIsLibcs() {
        let libc: [(Errno, Int32)] = [
            (.EPERM, EPERM), (.ENOENT, ENOENT), (.ESRCH, ESRCH), (.EINTR, EINTR), (.EIO, EIO), (.ENXIO, ENXIO),
            (.EBADF, EBADF), (.EAGAIN, EAGAIN), (.ENOMEM, ENOMEM), (.EACCES, EACCES), (.EFAULT, EFAULT),
            (.EBUSY, EBUSY), (.EEXIST, EEXIST), (.EINVAL, EINVAL), (.ENFILE, ENFILE), (.EMFILE, EMFILE),
            (.ENODEV, ENODEV), (.ENOTTY, ENOTTY), (.ENOSPC, ENOSPC), (.ENOSYS, ENOSYS), (.EOVERFLOW, EOVERFLOW), (.EOPNOTSUPP, EOPNOTSUPP),
        ]
        #expect(libc.count == Errno.named.count)
        for (ours, theirs) in libc {
            #expect(ours.code == theirs)
            #expect(ours.text == String(cString: strerror(theirs)), "errno \(theirs)")
        }
    }

    @Test func tableLimitIsTheKernels() {
        #expect(maxBuffersPerTable == Int(PHYR_IORING_MAX_REG_BUFFERS))
        #expect(PublishedIndex.capacity == Int(PHYR_REGISTRATIONS_MAX))
    }
}

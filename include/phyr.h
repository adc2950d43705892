/* SPDX-License-Identifier: MIT */
/*
 * phyr.h - pinned physical ranges for C programs.
 *
 * libphyr pins user memory as whole ranges ("phyrs"), tells how each range is
 * backed (base pages, transparent huge pages, hugetlb pages, or memory with no
 * folio behind it) and, where this process may see them, at which physical
 * addresses.  Huge pages are locked and released whole: a pin never splits a
 * huge mapping, and nothing is counted per 4 KiB page.
 *
 * Conventions, for every function below:
 *   - 0 (or a count) on success, a negative errno on failure; errno is left
 *     as the call found it, on success and failure alike, and the calling
 *     process is never aborted or sent a signal;
 *   - a failed call changes nothing: no half-pinned range, no stray lock;
 *   - phyr_last_error() then names what was wrong, for the calling thread;
 *   - any function may be called from any thread at any time, but not from
 *     a signal handler (libphyr allocates memory: it is not
 *     async-signal-safe).
 *
 * fork(): a child, of any generation, uses libphyr for itself -- its own
 * rings, pins, registrations and I/O -- and starts with no ranges and no
 * registrations (mlock is not inherited either).  The parent's handles are
 * refused there with -EINVAL and a sentence saying they are the parent's,
 * and nothing the child calls changes the parent's locks, pins or buffer
 * tables.  The descriptors libphyr keeps (its holder rings, its duplicates
 * of registered rings, /proc files) are closed in the child by fork itself,
 * and every descriptor libphyr opens is close-on-exec: none reaches a child
 * or an exec'd program.  Only a ring an ancestor had buffers registered in
 * through libphyr when it forked is refused to the child (-EBUSY): its table
 * is that ancestor's.  Memory pinned with PHYR_PIN_DONTFORK is not in the
 * child (-EFAULT, saying so).  A fork while other threads are inside
 * libphyr waits for those calls to return (as it waits for an mlock in
 * flight anyway) and leaves the child free to call libphyr; the calls
 * themselves share no lock for it, and ring_reg_lookup() never makes it
 * wait.  A child made by _Fork() or clone(2) without the atfork handlers is
 * recognised too, but only a single-threaded process may fork that way.  A
 * thread cancelled while inside libphyr is cancelled when the call returns.
 * What fork does to pinned memory: see PHYR_PIN_PHYS and
 * ring_register_ranges.
 *
 * The address space may change under a live range (munmap, a new mapping at
 * the same address, mremap): a successful phyr_pin() always means its memory
 * is locked now, and releasing a range unlocks every part of it that is
 * still mapped, memory mremap(2) grew in place, and memory it moved (see
 * phyr_unpin for what that takes).
 *
 * Needs Linux.  Best on 6.11+ (PROCMAP_QUERY) and 6.7+ (PAGEMAP_SCAN); older
 * kernels take slower fallbacks with the same results.  The io_uring half
 * needs 5.13+ (buffer table updates), and grows buffer tables without
 * re-pinning on 6.13+ (IORING_REGISTER_CLONE_BUFFERS).  Base pages must be
 * 4 KiB (x86-64; arm64 built for 4 KiB): elsewhere every call that pins or
 * registers answers -EOPNOTSUPP.
 */
#ifndef PHYR_H
#define PHYR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PHYR_API __attribute__((visibility("default")))
#else
#define PHYR_API
#endif

#define PHYR_VERSION_MAJOR 0
#define PHYR_VERSION_MINOR 3
#define PHYR_VERSION_PATCH 2

/* ---------------------------------------------------------------- types */

/*
 * One pinned range.  Opaque: a handle is a token the library checks against
 * its own registry before use.  Handles are never reused, so a released or
 * foreign handle is always detected (-EINVAL), never dereferenced.
 */
typedef struct phyr phyr_t;

/* Ranges registered as fixed buffers in one io_uring.  Opaque, checked like
 * phyr_t. */
typedef struct ring_reg ring_reg_t;

/* liburing's ring; include <liburing.h> to make one. */
struct io_uring;

/* One run of a range with uniform backing. */
struct phyr_seg {
	uint64_t addr;        /* user virtual address of the run's first byte */
	uint64_t len;         /* bytes */
	uint64_t phys;        /* physical address of addr, or PHYR_PHYS_UNKNOWN */
	uint32_t page_shift;  /* log2 of the backing page size: 12, 21, 30 ... */
	uint32_t flags;       /* PHYR_SEG_* */
};

/* One registered fixed buffer. */
struct ring_buf {
	uint64_t addr;        /* user address of the buffer's first byte */
	uint64_t len;         /* bytes, at most 1 GiB */
	uint32_t index;       /* buf_index for READ_FIXED / WRITE_FIXED / SEND_ZC */
	uint32_t page_shift;  /* backing page size of the whole buffer */
	uint32_t flags;       /* RING_BUF_* */
	uint32_t resv;
};

/* The running kernel holds the buffer as one entry per huge page, not one per
 * 4 KiB page: what libphyr found its io_uring to do at the first registration
 * (6.11+ coalesces buffers of several huge pages, 6.3 to 6.10 only a buffer
 * within one huge page, 6.1 none). */
#define RING_BUF_COALESCED 0x1u

/* phys of a segment whose physical address is not known. */
#define PHYR_PHYS_UNKNOWN 0xffffffffffffffffULL

/* ------------------------------------------------------------ pin flags */

/*
 * The pinner will write to the memory (DMA into it, READ_FIXED into it):
 * read-only mappings are refused with -EACCES and pages are populated by
 * write faults, so copy-on-write and zero pages are broken before locking.
 */
#define PHYR_PIN_WRITE 0x1u

/*
 * Physical addresses are required: phyr_segs() reports them and splits
 * segments where physical contiguity breaks.  Needs CAP_SYS_ADMIN (the kernel
 * hides PFNs in /proc/self/pagemap from everyone else): -EPERM without it.
 *
 * The addresses are a SNAPSHOT taken at pin time.  A pin locks memory with
 * mlock(2), which keeps it resident but not in place: compaction and NUMA
 * balancing may still migrate locked pages and change their physical address
 * (one compaction here moved 43% of a locked range's pages).  And after a
 * fork(), the parent's first write to each private page moves it to a new
 * physical page (copy-on-write): measured here, every page of an 8 MiB range
 * moved while the child lived.  Do not hand them to a device that DMAs long
 * after the pin.  Stable addresses need a kernel long-term pin: add
 * PHYR_PIN_LONGTERM, and they stay true while the range lives.
 */
#define PHYR_PIN_PHYS 0x2u

/*
 * The kernel's own long-term pin (FOLL_PIN | FOLL_LONGTERM), not a lock.
 * While the range lives its pages are neither migrated, swapped nor
 * replaced: PHYR_PIN_PHYS addresses stay true through compaction, NUMA
 * balancing and the parent's writes after fork(), and the pages stay held
 * even if the memory is unmapped under the pin (a device never writes into
 * freed memory).  A new mapping at the same address is new memory: pin it
 * anew.  The kernel keeps one reference per folio where the memory allows
 * (runs of huge pages of one size, on 6.11+), one per 4 KiB page elsewhere.
 * Nothing is mlock()ed.
 *
 * How: libphyr registers the memory as fixed buffers in io_urings of its
 * own ("holder rings": a few descriptors, close-on-exec, tables of 64 to
 * 16384 slots), laid out as ring_register_ranges() would lay them out.
 * Costs: about what io_uring_register_buffers() of the same memory costs
 * (1 GiB of THP in 2.2 ms against 2.1 ms, 1 GiB of 4 KiB pages in 27 ms
 * against 23 ms here); io_uring's charge against RLIMIT_MEMLOCK (huge pages once per
 * holder ring, 4 KiB pages per range; none with CAP_IPC_LOCK), shown as
 * VmPin in /proc/self/status; and fork() copies pinned private memory for
 * the child (1.3 to 4 s per GiB, splitting the parent's huge mappings)
 * unless PHYR_PIN_DONTFORK is given too.  Implies PHYR_PIN_WRITE: the kernel
 * pins for writing.
 *
 * Errors besides phyr_pin's own: -EACCES for memory without write
 * permission; -EOPNOTSUPP for memory the kernel cannot long-term pin
 * (PHYR_SEG_NOFOLIO, checked first; shared mappings of regular files, whose
 * writeback needs dirty tracking; on older kernels such as 6.1, any file
 * but shmem and hugetlbfs) and when io_uring is unavailable (kernel.io_uring_disabled, a
 * seccomp filter) -- phyr_last_error() says which; -ENOMEM with the charge
 * and the limit when RLIMIT_MEMLOCK cannot cover the kernel's charge;
 * -EMFILE when no descriptor is left for a holder ring.
 */
#define PHYR_PIN_LONGTERM 0x4u

/*
 * Children made by fork() do not inherit the pinned memory:
 * MADV_DONTFORK over the range's folio extents, counted like the locks
 * (MADV_DOFORK when the last PHYR_PIN_DONTFORK range covering an extent is
 * released).  fork() then neither copies the memory nor splits its huge
 * mappings (0.1 to 0.5 ms here for a fork holding 1 GiB long-term pinned,
 * instead of 1.5 s); a child that touches it gets SIGSEGV.  The extents end on folio
 * boundaries, so VMAs are split only where the pin's own lock splits them.
 * Whole folios: a small range in a huge page marks the whole huge page.  As
 * with locks, libphyr owns the DONTFORK state of memory it pins: the last
 * such range covering an extent gives it back to fork (MADV_DOFORK), also
 * if the caller had marked it by hand.
 */
#define PHYR_PIN_DONTFORK 0x8u

/*
 * Make the memory huge before pinning it: every 2 MiB-aligned extent the
 * range meets that lies wholly in a mapping that can hold transparent huge
 * pages and is not huge-mapped now is collapsed into a huge page
 * (MADV_COLLAPSE, Linux 6.1+), its contents copied byte for byte, after the
 * range is faulted in and before anything is locked or held -- so the pin,
 * its PHYR_PIN_PHYS addresses and its registrations are of the huge pages.
 * An extent the range only partly covers is still collapsed whole (the
 * kernel knows no smaller huge page, and fills its empty pages with zeroes);
 * hugetlb memory is huge already.  The pin then locks or holds whole huge
 * pages, as any pin of huge pages does: a 4 KiB range in a collapsed extent
 * locks 2 MiB, and RLIMIT_MEMLOCK is charged for that (-ENOMEM where it
 * cannot be).  Collapsing takes the mmap lock for writing once per extent:
 * other threads' page faults wait meanwhile.  Pages of other lock-only
 * ranges in a collapsed extent move (their PHYR_PIN_PHYS snapshots go
 * stale); pages pinned long-term are never collapsed.
 *
 * What cannot be collapsed is pinned as it is, and that is not an error:
 * MADV_NOHUGEPAGE mappings, a process with PR_SET_THP_DISABLE, mappings too
 * small or misaligned to hold an aligned extent, extents with no memory yet,
 * pages pinned by someone else, memory short, a kernel before 6.1.
 * phyr_segs() shows the result and phyr_last_error() stays untouched.
 * MADV_COLLAPSE does not depend on transparent_hugepage/enabled (the
 * kernel's admin guide): madvise mode without MADV_HUGEPAGE collapses too.
 *
 * Costs, measured here: three stray 4 KiB extents in 1 GiB of THP add about
 * 1 ms to the pin, after which the range registers as one coalesced buffer
 * (512 kernel entries instead of 2045 in 7 buffers); a whole GiB of 4 KiB
 * pages takes about 0.9 s to collapse (2.1 s on a busier machine), then
 * registers in 2.7 ms instead of 26 ms.
 */
#define PHYR_PIN_HUGE 0x10u

/* -------------------------------------------------------- segment flags */

#define PHYR_SEG_HUGE    0x1u /* PMD/PUD-mapped huge pages (THP or hugetlb) */
#define PHYR_SEG_HUGETLB 0x2u /* hugetlbfs / MAP_HUGETLB memory */
#define PHYR_SEG_SHARED  0x4u /* file, shmem or shared anonymous memory */
#define PHYR_SEG_NOFOLIO 0x8u /* PFN-mapped / IO memory: no folio behind it,
                                 described but never faulted or locked */

/* ----------------------------------------------------------------- pins */

/*
 * phyr_pin - populate and lock [addr, addr + len) and return it as one range.
 *
 * addr and len may have any byte alignment.  Every page is faulted in and
 * locked; huge pages touched by the range are locked whole, so the lock may
 * extend past both ends of the range to the edges of the huge pages that hold
 * them.  Locking is counted: overlapping pins are independent, and memory is
 * unlocked only when no live range covers its page.  Memory with no folio
 * (PHYR_SEG_NOFOLIO) is described, never faulted or locked; hugetlb memory is
 * faulted in but not mlock()ed, since the kernel never swaps it.
 *
 * Every pin locks all of its memory anew, even what an overlapping range
 * already holds: memory unmapped and mapped again at the same address, or
 * a forked child's, is not locked just because a count says so.
 *
 * Note: libphyr owns the lock state of memory it pins.  If the caller has also
 * mlock()ed that memory by hand, the last phyr_unpin() covering it unlocks it.
 * libphyr's locks are marked VM_LOCKONFAULT ("lf" in /proc/PID/smaps; the
 * pages are faulted in all the same) so that they can be found wherever
 * mremap(2) moves them.
 *
 * Returns 0 and stores the handle in *out, or:
 *   -EINVAL  out is NULL, len is 0, flags has an unknown bit, addr+len wraps;
 *   -EFAULT  a byte of the range is unmapped or PROT_NONE, cannot be faulted
 *            in (a file mapping past the end of its file), or was unmapped
 *            while being pinned;
 *   -EACCES  PHYR_PIN_WRITE on memory mapped without write permission;
 *   -EPERM   PHYR_PIN_PHYS, but this process cannot see physical addresses;
 *            or RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK;
 *   -ENOMEM  RLIMIT_MEMLOCK would be exceeded (the message gives the need,
 *            the limit and what is locked already), locking would pass
 *            vm.max_map_count, or memory ran out (a hugetlb pool with no
 *            page left: MAP_NORESERVE mappings reserve none);
 *   -EAGAIN  the kernel could not lock every page for lack of memory;
 *   -EMFILE  16,777,216 ranges are live already (a registration's references
 *            count), or (kernels before 5.14) no descriptor left for the
 *            pipe that faulting pages in takes there;
 *   -EOPNOTSUPP  the kernel's base page is not 4 KiB.
 */
PHYR_API int phyr_pin(const void *addr, size_t len, unsigned flags,
		      phyr_t **out);

/*
 * phyr_split - cut a range in two ranges released separately.
 *
 * r becomes [start, start + offset), *tail becomes [start + offset, end).  Both
 * stay pinned; a huge page holding the split point stays locked until both are
 * released.  Nothing is re-faulted or re-locked.  The tail keeps r's flags.
 *
 * A PHYR_PIN_LONGTERM range: both halves hold kernel pins, the folio holding
 * the split point is pinned by both, and releasing one half drops the
 * kernel's pins on the folios only it covered.  When the split point lies
 * inside one of the range's buffers, that buffer's two halves are pinned
 * anew (each up to the folio at the split point; pages already pinned do
 * not move) and the old one is released -- for a PHYR_PIN_PHYS range only
 * once pagemap shows the halves hold the very pages pinned before (-EFAULT,
 * the range left whole and held, where memory was replaced under the pin): a split then costs about as much
 * as pinning that buffer (at most 1 GiB), and can fail as phyr_pin can
 * (-ENOMEM for RLIMIT_MEMLOCK: the kernel charges the new halves' 4 KiB
 * pages before the old buffer's are given back).
 *
 * Returns 0, or -EINVAL: r is not a live range, tail is NULL, or offset is not
 * inside the range (0 < offset < len); -EMFILE: 16,777,216 ranges are live
 * already; for long-term ranges, what pinning the halves answered.
 */
PHYR_API int phyr_split(phyr_t *r, size_t offset, phyr_t **tail);

/*
 * phyr_unpin - release a range whole.
 *
 * A PHYR_PIN_LONGTERM range drops the kernel's pins on the folios no other
 * range (nor a registration) shares; the kernel lets go of them once I/O
 * in flight on them is done (6.1 a moment later still, in delayed work).
 * PHYR_PIN_DONTFORK marks no other live range covers are undone.  A lock
 * pin:
 *
 * Unlocks the memory no other live range still covers, all of it that is
 * still mapped, hole or no hole.  Memory mremap(2) grew in place is
 * unlocked too.  When part of the lock is gone from the range's addresses
 * (unmapped, replaced or moved), the release reads /proc/self/smaps for
 * locks carrying libphyr's mark that no live range holds, of the same kind
 * of memory (anonymous, or the same file), and unlocks them: that is where
 * mremap(2) moved it.  So a program that unmaps or moves pinned memory
 * should not keep MLOCK_ONFAULT locks of its own on other memory of that
 * kind (mlockall(MCL_FUTURE) is recognised, and then nothing is looked
 * for).  Not found: before Linux 6.11, a part of a range replaced alone
 * while the rest stays; and memory moved away while another range pins new
 * memory at its old address (it stays locked until it is unmapped).
 * The handle is dead afterwards.  Returns 0, or -EINVAL for NULL, a
 * released handle, a pointer libphyr never returned or a handle of the
 * parent process (nothing is released then).
 */
PHYR_API int phyr_unpin(phyr_t *r);

/*
 * phyr_range - the span of a range.
 *
 * Stores the range's first byte in *addr and its length in *len; either may
 * be NULL.  A range is its addresses: one whose memory mremap(2) moved
 * still reports where it was pinned.  Returns 0, or -EINVAL when r is not a
 * live range.
 */
PHYR_API int phyr_range(const phyr_t *r, void **addr, size_t *len);

/* ------------------------------------------------------------- segments */

/*
 * phyr_segs - how a range is backed.
 *
 * Returns the number of segments (>= 1) and fills the first min(nr, count) of
 * segs (segs may be NULL when nr is 0).  Segments are in address order, tile
 * the range exactly, and are maximal runs of one page size and one flag set;
 * with PHYR_PIN_PHYS they are also physically contiguous.  The first and last
 * segment are clipped to the range even when their huge page is not.
 * Without PHYR_PIN_PHYS, phys is PHYR_PHYS_UNKNOWN.  The description is taken
 * at pin time, and stays what it was if the memory is unmapped or moved.
 *
 * Returns the count, or -EINVAL when r is not a live range or segs is NULL
 * with nr > 0.
 */
PHYR_API int phyr_segs(const phyr_t *r, struct phyr_seg *segs, unsigned nr);

/* ------------------------------------------------------ io_uring buffers */

/*
 * ring_register_ranges - register pinned ranges as io_uring fixed buffers.
 *
 * The ranges are merged where they overlap or touch and cut where the page
 * size changes, where they are not contiguous, and at the kernel's 1 GiB
 * buffer limit on a huge-page boundary, so that every huge-page buffer meets
 * Linux 6.11's coalescing rules and costs one kernel entry per huge page
 * there; older kernels hold such buffers per 4 KiB page (see
 * RING_BUF_COALESCED for what this kernel does).  Buffers are registered in
 * address order, in ascending slots.
 *
 * libphyr owns the ring's buffer table: it creates it on first use, sized to
 * what is registered plus a little room (the kernel's lock accounting walks
 * every slot per huge page, so tables are never made large up front), grows
 * it on demand up to 16384 slots without re-pinning (Linux 6.13+; older
 * kernels re-register), shares it between registrations and reuses freed
 * slots.  It destroys the table when the ring's last registration goes.
 *
 * Long-term ranges (PHYR_PIN_LONGTERM) are not pinned again: a buffer that is
 * exactly one of the range's own held buffers -- each range registered
 * apart from the ranges it touches, as its pin laid it out -- is cloned
 * into the ring (IORING_REGISTER_CLONE_BUFFERS, Linux 6.19 and 6.18.3+,
 * where cloning into a table keeps its other slots): nothing is pinned or
 * charged again however many rings hold it, and it costs tens of
 * microseconds, not milliseconds.  Elsewhere (older kernels, merged or
 * touching ranges) the buffer is registered directly, as for any range.
 *
 * The registration holds its own reference to each range: the caller may
 * phyr_unpin() its handles at once; the memory stays pinned until
 * ring_unregister_ranges().  libphyr keeps its own duplicate of the ring's fd
 * while it has buffers registered in it, so a ring the caller exits first
 * stays valid for ring_unregister_ranges(); a new ring behind the same fd
 * number is told apart by its inode.
 *
 * fork() and registered memory: the kernel copies every page it holds for
 * io_uring into the child at fork (so the parent keeps its physical pages),
 * which makes fork() cost 1.3 to 4 s per GiB registered and splits the
 * parent's huge mappings into 4 KiB pages (1024 -> 0 MiB PMD-mapped, measured
 * here); PHYR_PIN_DONTFORK ranges avoid both.  A child shares every ring
 * it inherits with the parent: registering in one the parent had buffers
 * of libphyr's in is refused (-EBUSY); a ring the parent made but never
 * registered in, or a ring of the child's own, works.
 *
 * At most 4,194,304 registrations are live in a process at once.
 *
 * All or nothing: on failure nothing is registered and no reference is held.
 * Returns 0 and the registration in *out, or:
 *   -EINVAL      ring, ranges or out NULL, nr 0, flags not 0, a handle not a
 *                live range, or the ring's fd not an io_uring;
 *   -EOPNOTSUPP  a range has memory with no folio (PHYR_SEG_NOFOLIO); or
 *                io_uring_register(2) is denied (a seccomp filter,
 *                kernel.io_uring_disabled); or this kernel's io_uring
 *                refuses file-backed memory (older kernels, 6.1 among them,
 *                take only shmem and hugetlbfs files); or the base page is
 *                not 4 KiB;
 *   -EACCES      a range lies in a read-only mapping (io_uring pins for
 *                write), also when it was made read-only after it was pinned;
 *   -EFAULT      a range is no longer mapped, or was made PROT_NONE;
 *   -EBUSY       the ring already has a buffer table libphyr did not create,
 *                or (in a forked child) an ancestor had buffers registered
 *                in it through libphyr when it forked;
 *   -ENOSPC      the buffers do not fit the 16384 slots of a table;
 *   -ENOMEM      RLIMIT_MEMLOCK cannot cover the kernel's lock charge (huge
 *                pages charged once per ring): the message gives both;
 *   -ENXIO       the program unregistered the ring's table behind libphyr's
 *                back (io_uring_unregister_buffers) while registrations of
 *                libphyr's were in it: unregister those first;
 *   -EEXIST      an IORING_SETUP_SINGLE_ISSUER ring, from another thread;
 *   -EMFILE      no descriptor left for libphyr's duplicate of the ring, or
 *                4,194,304 registrations are live already;
 *   other        what the kernel answered, with the buffer in the message.
 */
PHYR_API int ring_register_ranges(struct io_uring *ring, phyr_t *const *ranges,
				  unsigned nr, unsigned flags, ring_reg_t **out);

/*
 * ring_reg_bufs - the buffers of a registration.
 *
 * Returns their count and fills the first min(nr, count) of bufs (bufs may be
 * NULL when nr is 0), sorted by address.  -EINVAL when reg is not live.
 */
PHYR_API int ring_reg_bufs(const ring_reg_t *reg, struct ring_buf *bufs,
			   unsigned nr);

/*
 * ring_reg_lookup - which buffer holds an address.
 *
 * Stores the buffer's index in *index and, in *avail, how many of the len
 * bytes from addr stay inside it (<= len): split I/O that crosses into the
 * next buffer there.  Either pointer may be NULL.  A binary search: no lock,
 * no syscall, safe from any number of threads at once.  Racing with
 * ring_unregister_ranges() of the same reg, it answers as if it ran just
 * before (a consistent answer) or just after (-EINVAL), never anything else.
 * Returns 0, -ENOENT when no buffer of reg holds addr, -EINVAL when reg is
 * not live.
 */
PHYR_API int ring_reg_lookup(const ring_reg_t *reg, const void *addr,
			     size_t len, unsigned *index, size_t *avail);

/*
 * ring_unregister_ranges - free the slots and drop the references.
 *
 * I/O already in flight on these buffers completes safely: the kernel holds
 * its own pins until it does.  What the program did behind libphyr's back
 * does not keep anything held: after io_uring_unregister_buffers() on the
 * ring, or with libphyr's duplicate of the ring closed (a daemon closing
 * every descriptor; the ring is reached through the program's own
 * descriptor of it, or is gone with its pins), it still releases the
 * registration whole and returns 0.  Returns 0, -EINVAL when reg is not
 * live (in a forked child, the parent's registrations are not: the child
 * cannot empty the parent's table), or what the kernel answered (-EEXIST
 * from another thread of an IORING_SETUP_SINGLE_ISSUER ring: nothing is
 * released then).
 */
PHYR_API int ring_unregister_ranges(ring_reg_t *reg);

/* ---------------------------------------------------------- diagnostics */

/* phyr_version - the library's version, "MAJOR.MINOR.PATCH". */
PHYR_API const char *phyr_version(void);

/*
 * phyr_last_error - what went wrong in this thread's last failed call.
 *
 * A sentence naming the address, mapping or limit at fault; "" when no call
 * has failed in this thread.  Successful calls leave it alone; it stays
 * valid until the next failed call in the same thread.
 */
PHYR_API const char *phyr_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PHYR_H */

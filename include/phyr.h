/* SPDX-License-Identifier: MIT */
/*
 * phyr.h - pinned physical ranges for C programs.
 *
 * libphyr pins user memory as whole ranges, tells how each range is backed
 * (4 KiB pages, transparent huge pages, hugetlb pages, memory with no folio)
 * and at which physical addresses, and registers ranges as io_uring fixed
 * buffers laid out so the kernel holds huge pages as huge pages.
 *
 * Every function returns 0 (or a count) or a negative errno; leaves errno as
 * it found it; changes nothing when it fails; and then leaves a sentence for
 * phyr_last_error().  Any thread may call any function at any time, but not a
 * signal handler.  A fork()ed child uses libphyr for itself and starts with
 * no ranges and no registrations.  libphyr(7) has the model, fork, what
 * changing the address space under a pin does, and the kernels; each
 * function's man page has the details and the measured costs.
 *
 * Kernels: Linux with 4 KiB base pages (elsewhere -EOPNOTSUPP);
 * PHYR_PIN_LONGTERM needs 5.13, ring_register_ranges 5.16.  Newer kernels are
 * faster (PROCMAP_QUERY 6.11, PAGEMAP_SCAN 6.7, coalesced huge-page buffers
 * 6.11, table clones 6.13).
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
#define PHYR_VERSION_MINOR 4
#define PHYR_VERSION_PATCH 0

/* ---------------------------------------------------------------- types */

/* One pinned range.  Opaque, never dereferenced: a released or foreign
 * handle is -EINVAL, never a crash. */
typedef struct phyr phyr_t;

/* Ranges registered as fixed buffers in one io_uring.  Opaque, like phyr_t. */
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
 * 4 KiB page (as probed: 6.11+ for several huge pages, 6.3+ within one). */
#define RING_BUF_COALESCED 0x1u

/* phys of a segment whose physical address is not known. */
#define PHYR_PHYS_UNKNOWN 0xffffffffffffffffULL

/* ------------------------------------------------------------ pin flags */

/* The memory will be written (DMA into it, READ_FIXED): read-only mappings
 * are refused (-EACCES) and pages are faulted in for writing. */
#define PHYR_PIN_WRITE 0x1u

/* Report physical addresses (phyr_segs).  Needs CAP_SYS_ADMIN (-EPERM).  A
 * snapshot: locked pages may still migrate, and after fork() the parent's
 * writes move them; add PHYR_PIN_LONGTERM for addresses that stay true. */
#define PHYR_PIN_PHYS 0x2u

/* The kernel's long-term pin (FOLL_LONGTERM, through io_urings of libphyr's
 * own) instead of mlock: pages never migrate, swap or go while the range
 * lives, even if unmapped.  Implies PHYR_PIN_WRITE.  Charged by io_uring
 * against RLIMIT_MEMLOCK (VmPin).  Also -EOPNOTSUPP (memory the kernel cannot
 * long-term pin; io_uring unavailable), -EMFILE / -ENFILE (no descriptor
 * left), -EBADF (another thread closed libphyr's ring behind its back). */
#define PHYR_PIN_LONGTERM 0x4u

/* Children made by fork() do not get the memory (MADV_DONTFORK over its
 * folios, counted): fork neither copies nor splits it. */
#define PHYR_PIN_DONTFORK 0x8u

/* Collapse the range's 2 MiB extents into huge pages first (MADV_COLLAPSE,
 * 6.1+), contents kept; what cannot be collapsed is pinned as it is. */
#define PHYR_PIN_HUGE 0x10u

/* -------------------------------------------------------- segment flags */

#define PHYR_SEG_HUGE    0x1u /* PMD/PUD-mapped huge pages (THP or hugetlb) */
#define PHYR_SEG_HUGETLB 0x2u /* hugetlbfs / MAP_HUGETLB memory */
#define PHYR_SEG_SHARED  0x4u /* file, shmem or shared anonymous memory */
#define PHYR_SEG_NOFOLIO 0x8u /* PFN-mapped / IO memory: no folio behind it,
                                 described but never faulted or locked */

/* ----------------------------------------------------------------- pins */

/*
 * phyr_pin - fault in and lock [addr, addr + len) as one range.
 *
 * Any byte alignment.  Huge pages the range touches are locked whole; locks
 * are counted, so overlapping ranges are independent.  flags: PHYR_PIN_*.
 * Returns 0 and the range in *out, or:
 *   -EINVAL  out NULL, len 0, an unknown flag, addr + len wraps;
 *   -EFAULT  part of the range unmapped, PROT_NONE or past its file's end;
 *   -EACCES  PHYR_PIN_WRITE on read-only memory;
 *   -EPERM   PHYR_PIN_PHYS without CAP_SYS_ADMIN, or RLIMIT_MEMLOCK is 0;
 *   -ENOMEM  past RLIMIT_MEMLOCK or vm.max_map_count, or out of memory;
 *   -EAGAIN  the kernel could not lock every page;
 *   -EMFILE  16,777,216 ranges live already;
 *   -EOPNOTSUPP  base pages are not 4 KiB (and see PHYR_PIN_LONGTERM);
 *   other    what the kernel answered reading this process's mappings,
 *            named in the message.
 */
PHYR_API int phyr_pin(const void *addr, size_t len, unsigned flags,
		      phyr_t **out);

/*
 * phyr_split - cut r at offset: r keeps the head, *tail gets the rest.
 *
 * Nothing is faulted or locked again; the folio at the cut stays pinned until
 * both halves are released.  A long-term range whose buffer the cut crosses
 * pins that buffer's halves anew, and can fail as phyr_pin can.
 * Returns 0, or -EINVAL (r not live, tail NULL, offset not inside), -EMFILE
 * (16,777,216 ranges live), or -EFAULT (PHYR_PIN_PHYS | PHYR_PIN_LONGTERM
 * memory replaced under the pin: the range is left whole).
 */
PHYR_API int phyr_split(phyr_t *r, size_t offset, phyr_t **tail);

/*
 * phyr_unpin - release a range.
 *
 * Unlocks (or drops the kernel's pins on) what no other live range or
 * registration holds, including memory mremap(2) moved or grew.  The handle
 * is dead afterwards.  Returns 0, or -EINVAL (NULL, released, foreign, or the
 * parent's handle in a forked child).
 */
PHYR_API int phyr_unpin(phyr_t *r);

/*
 * phyr_range - the range's first byte (*addr) and length (*len); either may
 * be NULL.  Returns 0, or -EINVAL when r is not live.
 */
PHYR_API int phyr_range(const phyr_t *r, void **addr, size_t *len);

/* ------------------------------------------------------------- segments */

/*
 * phyr_segs - how a range is backed, as of its pin.
 *
 * Fills the first min(nr, count) of segs with maximal runs of one page size,
 * flag set and NUMA node, in address order, tiling the range (physically
 * contiguous too with PHYR_PIN_PHYS).  Returns the count (>= 1), or -EINVAL (r not
 * live, segs NULL with nr > 0).
 */
PHYR_API int phyr_segs(const phyr_t *r, struct phyr_seg *segs, unsigned nr);

/* ---------------------------------------------------------------- NUMA */

/* phyr_pin_node's node: the node of the CPU the calling thread runs on. */
#define PHYR_NODE_LOCAL (-1)

/*
 * phyr_seg_nodes - the NUMA node of each segment, as of the pin.
 *
 * Returns the number of segments, as phyr_segs does, and fills the first
 * min(nr, count) of nodes: segment i's node, -1 for memory with no folio
 * (or where the kernel would not say).  Segments end where the node
 * changes.  One question to the kernel per folio at pin time (per 4 KiB
 * page where huge pages cannot be told apart), none on a machine with one
 * node.  Returns the count, or -EINVAL (r not live, nodes
 * NULL with nr > 0).
 */
PHYR_API int phyr_seg_nodes(const phyr_t *r, int *nodes, unsigned nr);

/*
 * phyr_pin_node - phyr_pin, after moving every page of the span that is not
 * on `node` there (move_pages: huge pages whole where the node has room,
 * data and all; the mappings' memory policy is left alone).
 *
 * node: a node with memory, or PHYR_NODE_LOCAL.  Returns 0 and *out, or what
 * phyr_pin returns, or:
 *   -EINVAL  no such node, it has no memory, or the cpuset forbids it
 *            (PHYR_NODE_LOCAL: the CPU's node has none): nothing moved;
 *   -EBUSY   a page cannot move (pinned: registered with io_uring, say; or
 *            mapped by another process), or a long-term pin moved one off
 *            the node: nothing pinned, the message names it;
 *   -ENOMEM  the node has no room;
 *   other    what move_pages answered (a seccomp filter's -EPERM, -ENOSYS).
 * Pages that moved before a failure stay moved.
 */
PHYR_API int phyr_pin_node(const void *addr, size_t len, unsigned flags, int node,
			   phyr_t **out);

/* ------------------------------------------------------ io_uring buffers */

/*
 * ring_register_ranges - register ranges as the ring's fixed buffers.
 *
 * Ranges are merged and cut so every huge-page buffer coalesces (6.11+).
 * libphyr owns the ring's buffer table: made on first use, grown to 16384
 * slots, shared by registrations, destroyed with the last one.  Long-term
 * ranges are cloned, not pinned again, where the kernel can.  The
 * registration holds its own references: the caller may unpin at once.
 * flags must be 0.  All or nothing.  Returns 0 and *out, or:
 *   -EINVAL      a NULL argument, nr 0, flags, a range not live, not a ring;
 *   -EOPNOTSUPP  memory with no folio; io_uring_register denied; file memory
 *                this kernel's io_uring refuses (6.1: all but shmem/hugetlb);
 *                a kernel before 5.16 (every ring on one shared inode);
 *   -EACCES      a range is read-only now;  -EFAULT  a range is unmapped now;
 *   -EBUSY       a table libphyr did not make, or (in a child) a table an
 *                ancestor registered through libphyr;
 *   -ENOSPC      more than 16384 slots;  -ENOMEM  past RLIMIT_MEMLOCK;
 *   -ENXIO       the table was unregistered behind libphyr's back;
 *   -EEXIST      an IORING_SETUP_SINGLE_ISSUER ring, from another thread;
 *   -EMFILE      no descriptor left (or -ENFILE), 4,194,304 registrations
 *                or 16,777,216 ranges live (its references count);
 *   other        what the kernel answered, with the buffer in the message.
 */
PHYR_API int ring_register_ranges(struct io_uring *ring, phyr_t *const *ranges,
				  unsigned nr, unsigned flags, ring_reg_t **out);

/*
 * ring_reg_bufs - the registration's buffers, by address.
 *
 * Fills the first min(nr, count) of bufs.  Returns the count, or -EINVAL
 * (reg not live, bufs NULL with nr > 0).
 */
PHYR_API int ring_reg_bufs(const ring_reg_t *reg, struct ring_buf *bufs,
			   unsigned nr);

/*
 * ring_reg_lookup - the buffer holding addr: its index in *index, and in
 * *avail how many of the len bytes from addr it holds.  Either may be NULL.
 *
 * No lock, no system call.  Returns 0, -ENOENT (no buffer holds addr), or
 * -EINVAL (reg not live).
 */
PHYR_API int ring_reg_lookup(const ring_reg_t *reg, const void *addr,
			     size_t len, unsigned *index, size_t *avail);

/*
 * ring_unregister_ranges - empty the registration's slots and drop its
 * references; I/O in flight completes safely.
 *
 * Returns 0 (also when the program unregistered the table or closed the ring
 * behind libphyr's back), -EINVAL (reg not live), or what the kernel answered
 * (-EEXIST: a SINGLE_ISSUER ring from another thread; nothing released).
 */
PHYR_API int ring_unregister_ranges(ring_reg_t *reg);

/* ---------------------------------------------------------- diagnostics */

/* phyr_version - the library's version, "MAJOR.MINOR.PATCH". */
PHYR_API const char *phyr_version(void);

/* phyr_last_error - this thread's last failure, as a sentence naming the
 * address, mapping or limit at fault; "" if none.  Valid until its next. */
PHYR_API const char *phyr_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PHYR_H */

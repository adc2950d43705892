// SPDX-License-Identifier: MIT
/*
 * phyr_kernel.h - the kernel interfaces libphyr's Swift code needs that
 * Bookworm's linux-libc-dev predates, plus the few helpers Swift cannot
 * express (thread-local storage, atomic page touches).
 *
 * Plain header on purpose: no <linux/fs.h>, no <liburing.h>.  Their feature
 * macros clash with the Swift Glibc module, so Swift sees only what is here.
 * UAPI values are copied from the stable kernel ABI and never change.
 */
#ifndef PHYR_KERNEL_H
#define PHYR_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/* The C library the kernel layer calls, through this module alone: Swift's
 * Glibc overlay does not exist in Embedded Swift, and these headers import
 * the same way in both builds.  Variadic functions (open, fcntl, ioctl,
 * syscall) and errno, which Swift cannot call or read, have shims below. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* PAGEMAP_SCAN, Linux 6.7 (include/uapi/linux/fs.h) */
struct phyr_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct phyr_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PHYR_PAGE_IS_FILE    (1u << 2)
#define PHYR_PAGE_IS_PRESENT (1u << 3)
#define PHYR_PAGE_IS_SWAPPED (1u << 4)
#define PHYR_PAGE_IS_PFNZERO (1u << 5)
#define PHYR_PAGE_IS_HUGE    (1u << 6)

/* _IOWR('f', 16, struct pm_scan_arg) */
#define PHYR_PAGEMAP_SCAN 0xC0606610UL

/* PROCMAP_QUERY, Linux 6.11 (include/uapi/linux/fs.h) */
struct phyr_procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};

#define PHYR_PROCMAP_QUERY_VMA_READABLE   0x01u
#define PHYR_PROCMAP_QUERY_VMA_WRITABLE   0x02u
#define PHYR_PROCMAP_QUERY_VMA_EXECUTABLE 0x04u
#define PHYR_PROCMAP_QUERY_VMA_SHARED     0x08u
#define PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10u

/* _IOWR('f', 17, struct procmap_query) */
#define PHYR_PROCMAP_QUERY 0xC0686611UL

/* madvise(2) advice, Linux 5.14 */
#define PHYR_MADV_POPULATE_READ  22
#define PHYR_MADV_POPULATE_WRITE 23
/* Linux 6.1 */
#define PHYR_MADV_COLLAPSE 25

/* The calling thread's last-error buffer (PHYR_ERR_MAX bytes, NUL-ended). */
#define PHYR_ERR_MAX 512
char *phyr_shim_error_buffer(void);

/* "MAJOR.MINOR.PATCH", from phyr.h's macros. */
const char *phyr_shim_version(void);

/*
 * Faulting pages in on kernels without MADV_POPULATE_* (before 5.14), never
 * raising a signal in the caller: both fault from inside the kernel, which
 * answers EFAULT where a load or store of ours would have raised SIGBUS (a
 * file mapping past its end, a hugetlb pool with no page left) or SIGSEGV
 * (memory another thread just unmapped).  0 or -errno.
 *
 * phyr_shim_probe_read reads one byte of every `step` bytes (copied into a
 * pipe).
 *
 * phyr_shim_fault_in_writable makes a write fault at the start of the range
 * and at every `block` boundary in it, changing nothing and reading nothing
 * first (a read would map the huge zero page, which older kernels split
 * into 4 KiB pages on the write).  One fault per 2 MiB makes a transparent
 * huge page where the mapping allows one; mlock faults in the rest.
 */
int phyr_shim_probe_read(const void *addr, size_t len, size_t step);
int phyr_shim_fault_in_writable(void *addr, size_t len, size_t block);

/* mremap(addr, len, len, 0): a no-op but for its checks (GNU's, hidden from
 * Swift's Glibc module); 0 or -errno. */
int phyr_shim_mremap_in_place(void *addr, size_t len);

/* prctl(PR_GET_THP_DISABLE) (variadic, so not imported into Swift): 1 when
 * THP is disabled for this process, 0 when not, or -errno. */
int phyr_shim_thp_disabled(void);

/* mlock2(2) (Linux 4.4), which glibc's Swift module does not show; 0 or -errno. */
#define PHYR_MLOCK_ONFAULT 0x01u
int phyr_shim_mlock2(const void *addr, size_t len, unsigned flags);

/*
 * The fork guard (fork.c): every call into libphyr runs between enter and
 * leave (nesting is counted per thread), and fork() waits until none is in
 * flight.  phyr_shim_call_enter also saves errno, which phyr_shim_call_leave
 * restores: no libphyr function changes it.  The epoch counts the forks this
 * process is a child of; reading it also notices a fork that ran no atfork
 * handlers (the wiped token reads 0 in such a child).
 */
void phyr_shim_fork_guard_enter(void);
void phyr_shim_fork_guard_leave(void);
/* Around a kernel call that may block as long as a ring's requests take,
 * holding no lock a child could need: a fork does not wait for it. */
void phyr_shim_fork_guard_step_out(void);
void phyr_shim_fork_guard_step_in(void);
int phyr_shim_call_enter(void);
void phyr_shim_call_leave(int saved_errno);
int phyr_shim_errno_save(void);
void phyr_shim_errno_restore(int saved_errno);
void phyr_shim_forked_without_handlers(void);
extern unsigned long phyr_fork_epoch_counter;
extern volatile unsigned long *phyr_fork_wiped_token;
static inline unsigned long phyr_shim_fork_epoch(void)
{
	if (__builtin_expect(__atomic_load_n(phyr_fork_wiped_token, __ATOMIC_ACQUIRE) != 1, 0))
		phyr_shim_forked_without_handlers();
	return __atomic_load_n(&phyr_fork_epoch_counter, __ATOMIC_ACQUIRE);
}

/* Whether libphyr's globals have been made (under the fork guard, so a fork
 * never copies one half made).  Set once by the Swift side. */
extern int phyr_globals_warm;
static inline int phyr_shim_globals_warm(void)
{
	return __atomic_load_n(&phyr_globals_warm, __ATOMIC_ACQUIRE);
}
static inline void phyr_shim_set_globals_warm(void)
{
	__atomic_store_n(&phyr_globals_warm, 1, __ATOMIC_RELEASE);
}

/*
 * Descriptors libphyr keeps open beyond a call (fork.c): a forked child
 * closes its copies at once, in the atfork handler, however many there are.
 * Add after opening (0, or -errno and the caller closes it), forget before
 * closing.  The identities of kept RING descriptors (libphyr's duplicates of
 * callers' rings) are remembered in the child: those rings are its parent's.
 */
#define PHYR_KEPT_HOLDER 1 /* a holder ring of long-term pins */
#define PHYR_KEPT_RING   2 /* libphyr's duplicate of a caller's ring */
#define PHYR_KEPT_PROC   3 /* a cached /proc file */
int phyr_shim_kept_fd_add(int fd, int kind);
/* Forgets the entry of exactly this file (the number is not libphyr's any
 * more: the program closed it behind libphyr's back). */
void phyr_shim_kept_fd_forget(int fd, uint64_t device, uint64_t inode);
/* Closes a kept descriptor, if it still names what libphyr opened. */
void phyr_shim_kept_fd_close(int fd);
int phyr_shim_kept_fd_count(void);
/* `fd` moved to a high number (the old one closed), where a program's own
 * files seldom are; `fd` itself when there is no room up there. */
int phyr_shim_kept_fd_moved_high(int fd);

/* A futex lock for the Swift side (0 free): not Swift's Mutex, whose owner
 * id a forked child gets wrong. */
void phyr_shim_lock(int *word);
void phyr_shim_unlock(int *word);

/* /proc/self/maps (0) or /proc/self/pagemap (1), kept open and checked to
 * be still that file at each call (fork.c): the fd, or -errno. */
int phyr_shim_self_file(int which);

/* Whether the io_uring with this identity is one an ancestor had a buffer
 * table of libphyr's in when it forked this process (or an ancestor). */
struct phyr_file_identity {
	uint64_t device;
	uint64_t inode;
};
int phyr_shim_ring_inherited(uint64_t device, uint64_t inode);

/* The published lookup index of each registration handle slot (handles.c):
 * chunks of plain C storage made on first use, so a lookup touches no lazily
 * made global.  A slot's chunk is reserved (under the registrar's lock)
 * before the slot is published. */
#define PHYR_REGISTRATIONS_MAX (1u << 22)
#define PHYR_HANDLE_CHUNK 4096u
extern uintptr_t *phyr_published_chunks[PHYR_REGISTRATIONS_MAX / PHYR_HANDLE_CHUNK];
int phyr_shim_handle_slot_reserve(unsigned slot);
static inline uintptr_t phyr_shim_published(unsigned slot)
{
	if (slot >= PHYR_REGISTRATIONS_MAX)
		return 0;
	uintptr_t *chunk = __atomic_load_n(&phyr_published_chunks[slot / PHYR_HANDLE_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[slot % PHYR_HANDLE_CHUNK], __ATOMIC_ACQUIRE) : 0;
}
static inline void phyr_shim_publish(unsigned slot, uintptr_t index)
{
	uintptr_t *chunk = __atomic_load_n(&phyr_published_chunks[slot / PHYR_HANDLE_CHUNK], __ATOMIC_ACQUIRE);
	if (chunk)
		__atomic_store_n(&chunk[slot % PHYR_HANDLE_CHUNK], index, __ATOMIC_RELEASE);
}

/* ioctl(2) with a pointer argument (Swift cannot call C variadics); the
 * result or -errno. */
int phyr_shim_ioctl(int fd, unsigned long request, void *arg);

/* ---- io_uring (include/uapi/linux/io_uring.h), called on the ring's fd */

#define PHYR_IORING_REGISTER_BUFFERS        0u
#define PHYR_IORING_UNREGISTER_BUFFERS      1u
#define PHYR_IORING_REGISTER_BUFFERS2       15u
#define PHYR_IORING_REGISTER_BUFFERS_UPDATE 16u
#define PHYR_IORING_REGISTER_CLONE_BUFFERS  30u /* Linux 6.12; offsets 6.13 */

#define PHYR_IORING_RSRC_REGISTER_SPARSE (1u << 0)
#define PHYR_IORING_REGISTER_DST_REPLACE (1u << 1)
/* The kernel's limit on a buffer table (IORING_MAX_REG_BUFFERS). */
#define PHYR_IORING_MAX_REG_BUFFERS (1u << 14)

struct phyr_iovec {
	uint64_t base;
	uint64_t len;
};

struct phyr_rsrc_register {
	uint32_t nr;
	uint32_t flags;
	uint64_t resv2;
	uint64_t data;
	uint64_t tags;
};

struct phyr_rsrc_update2 {
	uint32_t offset;
	uint32_t resv;
	uint64_t data;
	uint64_t tags;
	uint32_t nr;
	uint32_t resv2;
};

struct phyr_clone_buffers {
	uint32_t src_fd;
	uint32_t flags;
	uint32_t src_off;
	uint32_t dst_off;
	uint32_t nr;
	uint32_t pad[3];
};

struct io_uring;

/* The ring's file descriptor, read out of liburing's struct io_uring. */
int phyr_shim_ring_fd(const struct io_uring *ring);

/* io_uring_register(2); returns the result or -errno (the caller retries EINTR). */
int phyr_shim_io_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args);

/* A minimal io_uring (no mappings), for cloning buffer tables; fd or -errno. */
int phyr_shim_io_uring_setup(unsigned entries);

/* An eventfd: a file of the one anonymous inode such files share (and, before
 * Linux 5.16, every io_uring too); the fd or -errno. */
int phyr_shim_anonymous_file(void);

/* move_pages(2) of process `pid` (0: this one), `count` pages.  With `nodes`
 * NULL, status[i] gets the node of pages[i] (or -errno); with `nodes`, the
 * pages move there (MPOL_MF_MOVE: pages only this process maps) and status[i]
 * gets the node each landed on (or -errno).  Returns 0, the number of pages
 * not moved, or -errno. */
long phyr_shim_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status);

/* The NUMA node of the CPU the calling thread runs on, or -errno. */
int phyr_shim_current_node(void);

/* The calling thread's errno. */
int phyr_shim_errno(void);

/* open(path, O_RDONLY | O_CLOEXEC): the fd or -errno. */
int phyr_shim_open_read(const char *path);

/* fcntl(fd, F_DUPFD_CLOEXEC, 0): the new fd or -errno. */
int phyr_shim_dup_cloexec(int fd);

/* Whether capability `cap` is in this thread's effective set. */
int phyr_shim_has_capability(int cap);

#define PHYR_CAP_IPC_LOCK  14
#define PHYR_CAP_SYS_ADMIN 21

#endif /* PHYR_KERNEL_H */

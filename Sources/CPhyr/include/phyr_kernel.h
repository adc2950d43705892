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

/* The calling thread's last-error buffer (PHYR_ERR_MAX bytes, NUL-ended). */
#define PHYR_ERR_MAX 512
char *phyr_shim_error_buffer(void);

/*
 * Fault pages in without changing their contents, for kernels without
 * MADV_POPULATE_*: a read of each page, or an atomic compare-exchange of each byte with itself, a
 * write fault that cannot race with the owner's own stores.
 */
void phyr_shim_touch_read(const void *addr, size_t len, size_t step);
void phyr_shim_touch_write(void *addr, size_t len, size_t step);

/* ioctl(2) with a pointer argument: Swift cannot call C variadics directly. */
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

/* io_uring_register(2); returns the result or -errno. */
int phyr_shim_io_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args);

/* A minimal io_uring (no mappings), for cloning buffer tables; fd or -errno. */
int phyr_shim_io_uring_setup(unsigned entries);

/* kcmp(KCMP_FILE): 1 when both descriptors name one open file, 0 when not,
 * -errno when the kernel cannot tell. */
int phyr_shim_same_file(int fd1, int fd2);

/* Whether capability `cap` is in this thread's effective set. */
int phyr_shim_has_capability(int cap);

#endif /* PHYR_KERNEL_H */

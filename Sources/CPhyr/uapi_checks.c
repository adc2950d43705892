// SPDX-License-Identifier: MIT
/*
 * phyr_kernel.h copies kernel UAPI values because Bookworm's headers (and
 * Swift, which must not see <linux/fs.h>) lack them.  Wherever the headers
 * of the machine building libphyr do have a value, it is checked here against
 * the copy at compile time: a wrong copy does not build.  No code.
 */
#include "phyr_kernel.h"

#include <stddef.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/mman.h>
#include <linux/version.h>

#define SAME(ours, theirs) _Static_assert((ours) == (theirs), #ours " differs from the kernel's " #theirs)
#define SAME_SIZE(ours, theirs) _Static_assert(sizeof(struct ours) == sizeof(struct theirs), \
					       "struct " #ours " differs in size from the kernel's " #theirs)
#define SAME_FIELD(ours, theirs, field) \
	_Static_assert(offsetof(struct ours, field) == offsetof(struct theirs, field), \
		       #ours "." #field " is not where the kernel's " #theirs " has it")

SAME(PHYR_CAP_IPC_LOCK, CAP_IPC_LOCK);
SAME(PHYR_CAP_SYS_ADMIN, CAP_SYS_ADMIN);

#ifdef MLOCK_ONFAULT
SAME(PHYR_MLOCK_ONFAULT, MLOCK_ONFAULT);
#endif
#ifdef MADV_POPULATE_READ
SAME(PHYR_MADV_POPULATE_READ, MADV_POPULATE_READ);
SAME(PHYR_MADV_POPULATE_WRITE, MADV_POPULATE_WRITE);
#endif

#ifdef PAGEMAP_SCAN /* Linux 6.7 headers */
SAME(PHYR_PAGEMAP_SCAN, PAGEMAP_SCAN);
SAME(PHYR_PAGE_IS_FILE, PAGE_IS_FILE);
SAME(PHYR_PAGE_IS_PRESENT, PAGE_IS_PRESENT);
SAME(PHYR_PAGE_IS_SWAPPED, PAGE_IS_SWAPPED);
SAME(PHYR_PAGE_IS_PFNZERO, PAGE_IS_PFNZERO);
SAME(PHYR_PAGE_IS_HUGE, PAGE_IS_HUGE);
SAME_SIZE(phyr_pm_scan_arg, pm_scan_arg);
SAME_SIZE(phyr_page_region, page_region);
SAME_FIELD(phyr_pm_scan_arg, pm_scan_arg, walk_end);
SAME_FIELD(phyr_pm_scan_arg, pm_scan_arg, return_mask);
#endif

#ifdef PROCMAP_QUERY /* Linux 6.11 headers */
SAME(PHYR_PROCMAP_QUERY, PROCMAP_QUERY);
SAME(PHYR_PROCMAP_QUERY_VMA_READABLE, PROCMAP_QUERY_VMA_READABLE);
SAME(PHYR_PROCMAP_QUERY_VMA_WRITABLE, PROCMAP_QUERY_VMA_WRITABLE);
SAME(PHYR_PROCMAP_QUERY_VMA_EXECUTABLE, PROCMAP_QUERY_VMA_EXECUTABLE);
SAME(PHYR_PROCMAP_QUERY_VMA_SHARED, PROCMAP_QUERY_VMA_SHARED);
SAME(PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA, PROCMAP_QUERY_COVERING_OR_NEXT_VMA);
SAME_SIZE(phyr_procmap_query, procmap_query);
SAME_FIELD(phyr_procmap_query, procmap_query, vma_page_size);
SAME_FIELD(phyr_procmap_query, procmap_query, vma_name_addr);
#endif

/* io_uring's opcodes are enum constants: the headers' version says which exist. */
SAME(PHYR_IORING_REGISTER_BUFFERS, IORING_REGISTER_BUFFERS);
SAME(PHYR_IORING_UNREGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 13, 0)
SAME(PHYR_IORING_REGISTER_BUFFERS2, IORING_REGISTER_BUFFERS2);
SAME(PHYR_IORING_REGISTER_BUFFERS_UPDATE, IORING_REGISTER_BUFFERS_UPDATE);
SAME_SIZE(phyr_rsrc_register, io_uring_rsrc_register);
SAME_SIZE(phyr_rsrc_update2, io_uring_rsrc_update2);
SAME_FIELD(phyr_rsrc_update2, io_uring_rsrc_update2, nr);
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 19, 0)
SAME(PHYR_IORING_RSRC_REGISTER_SPARSE, IORING_RSRC_REGISTER_SPARSE);
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
SAME(PHYR_IORING_REGISTER_CLONE_BUFFERS, IORING_REGISTER_CLONE_BUFFERS);
SAME_SIZE(phyr_clone_buffers, io_uring_clone_buffers);
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
SAME(PHYR_IORING_REGISTER_DST_REPLACE, IORING_REGISTER_DST_REPLACE);
SAME_FIELD(phyr_clone_buffers, io_uring_clone_buffers, dst_off);
#endif

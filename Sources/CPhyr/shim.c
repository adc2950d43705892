// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "phyr_kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/futex.h>
#include <stdint.h>
#include <unistd.h>

/* Swift has no thread-local storage of its own; C11 does. */
static _Thread_local char last_error[PHYR_ERR_MAX];

char *phyr_shim_error_buffer(void)
{
	return last_error;
}

int phyr_shim_probe_read(const void *addr, size_t len, size_t step)
{
	enum { BATCH = 256 };
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	struct iovec iov[BATCH];
	char sink[BATCH];
	int rc = 0;
	size_t off = 0;
	while (off < len && rc == 0) {
		int n = 0;
		for (; n < BATCH && off < len; n++, off += step) {
			iov[n].iov_base = (char *)addr + off;
			iov[n].iov_len = 1;
		}
		ssize_t w;
		do
			w = writev(pipefd[1], iov, n);
		while (w < 0 && errno == EINTR);
		/* A fault part way makes the write short; at its first byte, EFAULT. */
		if (w < 0)
			rc = -errno;
		else if (w < n)
			rc = -EFAULT;
		while (read(pipefd[0], sink, sizeof sink) > 0)
			;
	}
	close(pipefd[0]);
	close(pipefd[1]);
	return rc;
}

int phyr_shim_fault_in_writable(void *addr, size_t len, size_t block)
{
	/*
	 * FUTEX_WAKE_OP adds 0 to the word at uaddr2, atomically and from inside
	 * the kernel: a write access that changes nothing, that needs no read
	 * first, and whose fault the kernel takes with fault_in_user_writeable()
	 * -- so memory that cannot be made writable answers EFAULT instead of
	 * raising a signal.  The kernel wakes one waiter on uaddr1 (our own
	 * stack word: nobody) and, when the comparison holds, one on uaddr2: it
	 * holds only for a word below -2048, never the small values futexes
	 * hold, so no waiter of the caller's is woken (a spurious wakeup if one
	 * ever were, which futex users must tolerate).
	 */
	const uint32_t op = FUTEX_OP(FUTEX_OP_ADD, 0, FUTEX_OP_CMP_LT, -2048);
	uint32_t nobody = 0;
	uintptr_t at = (uintptr_t)addr, end = (uintptr_t)addr + len;
	while (at < end) {
		long ret;
		do
			ret = syscall(SYS_futex, &nobody, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 0, 0,
				      (void *)(at & ~(uintptr_t)3), op);
		while (ret < 0 && errno == EINTR);
		if (ret < 0)
			return -errno;
		at = (at & ~(uintptr_t)(block - 1)) + block;
	}
	return 0;
}

int phyr_shim_mremap_in_place(void *addr, size_t len)
{
	void *r = mremap(addr, len, len, 0);
	return r == MAP_FAILED ? -errno : 0;
}

int phyr_shim_thp_disabled(void)
{
	int r = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	return r < 0 ? -errno : r;
}

int phyr_shim_mlock2(const void *addr, size_t len, unsigned flags)
{
	long ret = syscall(SYS_mlock2, addr, len, flags);
	return ret < 0 ? -errno : 0;
}

int phyr_shim_ioctl(int fd, unsigned long request, void *arg)
{
	int ret = ioctl(fd, request, arg);
	return ret < 0 ? -errno : ret;
}

#include "phyr.h"

#define PHYR_STRINGIFY_(x) #x
#define PHYR_STRINGIFY(x) PHYR_STRINGIFY_(x)

const char *phyr_shim_version(void)
{
	return PHYR_STRINGIFY(PHYR_VERSION_MAJOR) "." PHYR_STRINGIFY(PHYR_VERSION_MINOR) "." PHYR_STRINGIFY(PHYR_VERSION_PATCH);
}

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

long phyr_shim_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status)
{
	long ret = syscall(SYS_move_pages, pid, count, pages, nodes, status, nodes ? MPOL_MF_MOVE : 0);
	return ret < 0 ? -errno : ret;
}

int phyr_shim_current_node(void)
{
	unsigned cpu = 0, node = 0;
	if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0)
		return -errno;
	return (int)node;
}

int phyr_shim_errno(void)
{
	return errno;
}

int phyr_shim_open_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int phyr_shim_dup_cloexec(int fd)
{
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return dup < 0 ? -errno : dup;
}

#ifdef PHYR_EMBEDDED
/*
 * Embedded Swift's Hasher seeds itself with arc4random_buf, which glibc has
 * only from 2.36 (Debian 12): libphyr's own, over getrandom(2), keeps the
 * library loadable on older glibc.  Hidden, and kept out of the dynamic
 * symbol table by the version script: programs that call arc4random_buf get
 * glibc's, and glibc's never replaces it.
 */
__attribute__((visibility("hidden"))) void arc4random_buf(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		long got = syscall(SYS_getrandom, p, n, 0);
		if (got > 0) {
			p += got;
			n -= (size_t)got;
		} else if (got < 0 && errno != EINTR) {
			/* No getrandom (before 3.17): the hash seed needs no secrecy. */
			for (; n > 0; n--, p++)
				*p = (unsigned char)((uintptr_t)p * 2654435761u >> 24);
		}
	}
}
#endif

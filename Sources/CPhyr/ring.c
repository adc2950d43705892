// SPDX-License-Identifier: MIT
/*
 * The io_uring edge.  The only file that sees <liburing.h>: its feature
 * macros clash with Swift's Glibc module, so Swift gets plain functions.
 * Registration itself needs no liburing function, only io_uring_register(2)
 * on the ring's fd, so libphyr does not link liburing.
 */
#include "phyr_kernel.h"

#include <errno.h>
#include <linux/capability.h>
#include <liburing.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

int phyr_shim_ring_fd(const struct io_uring *ring)
{
	return ring->ring_fd;
}

/* Both answer -errno; the Swift side retries EINTR (shimRetrying). */
int phyr_shim_io_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
	long ret = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
	return ret < 0 ? -errno : (int)ret;
}

int phyr_shim_io_uring_setup(unsigned entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	long ret = syscall(__NR_io_uring_setup, entries, &p);
	return ret < 0 ? -errno : (int)ret;
}

int phyr_shim_anonymous_file(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int phyr_shim_has_capability(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capget, &hdr, data) != 0 || cap < 0 || cap >= 64)
		return 0;
	return (data[cap / 32].effective >> (cap % 32)) & 1;
}

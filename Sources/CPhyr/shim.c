#include "phyr_kernel.h"

#include <sys/ioctl.h>

/* Swift has no thread-local storage of its own; C11 does. */
static _Thread_local char last_error[PHYR_ERR_MAX];

char *phyr_shim_error_buffer(void)
{
	return last_error;
}

void phyr_shim_touch_read(const void *addr, size_t len, size_t step)
{
	const volatile unsigned char *p = addr;
	for (size_t off = 0; off < len; off += step)
		(void)p[off];
}

void phyr_shim_touch_write(void *addr, size_t len, size_t step)
{
	unsigned char *p = addr;
	/*
	 * Not fetch_add(0): compilers turn idempotent read-modify-writes into
	 * fenced loads, which read-fault a zero page.  A compare-exchange of a
	 * byte with itself is a real write access even when it loses a race.
	 */
	for (size_t off = 0; off < len; off += step) {
		unsigned char v = __atomic_load_n(&p[off], __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&p[off], &v, v, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
}

int phyr_shim_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

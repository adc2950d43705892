/* SPDX-License-Identifier: MIT */
/*
 * What a user's program does with the installed packages: pin memory,
 * register it in a ring, read a file into it with READ_FIXED through the
 * registration, and check every byte.  Built with pkg-config and with CMake
 * in a clean Debian root (tests/clean_root.sh).
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <phyr.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEN (8u << 20)

static int fail(const char *what, int rc)
{
	fprintf(stderr, "FAIL %s: %d (%s): %s\n", what, rc, strerror(rc < 0 ? -rc : rc), phyr_last_error());
	return 1;
}

int main(void)
{
	char path[] = "/tmp/phyr-installed-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return fail("mkstemp", -1);
	unlink(path);
	unsigned char *want = malloc(LEN);
	for (unsigned i = 0; i < LEN; i++)
		want[i] = (unsigned char)(i * 2654435761u >> 13);
	if (write(fd, want, LEN) != (ssize_t)LEN)
		return fail("write", -1);

	unsigned char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	phyr_t *r;
	int rc = phyr_pin(p, LEN, PHYR_PIN_WRITE, &r);
	if (rc)
		return fail("phyr_pin", rc);
	struct io_uring ring;
	if ((rc = io_uring_queue_init(8, &ring, 0)))
		return fail("io_uring_queue_init", rc);
	ring_reg_t *reg;
	if ((rc = ring_register_ranges(&ring, &r, 1, 0, &reg)))
		return fail("ring_register_ranges", rc);
	for (size_t off = 0; off < LEN;) {
		unsigned index;
		size_t avail;
		if ((rc = ring_reg_lookup(reg, p + off, LEN - off, &index, &avail)))
			return fail("ring_reg_lookup", rc);
		size_t n = avail < (1u << 20) ? avail : (1u << 20);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read_fixed(sqe, fd, p + off, (unsigned)n, off, (int)index);
		io_uring_submit(&ring);
		struct io_uring_cqe *cqe;
		if ((rc = io_uring_wait_cqe(&ring, &cqe)))
			return fail("io_uring_wait_cqe", rc);
		if (cqe->res != (int)n)
			return fail("READ_FIXED", cqe->res);
		io_uring_cqe_seen(&ring, cqe);
		off += n;
	}
	if (memcmp(p, want, LEN) != 0)
		return fail("the data read", -1);
	if ((rc = ring_unregister_ranges(reg)) || (rc = phyr_unpin(r)))
		return fail("release", rc);
	io_uring_queue_exit(&ring);
	printf("libphyr %s: pinned, registered, read %u bytes with READ_FIXED, every byte right\n", phyr_version(), LEN);
	return 0;
}

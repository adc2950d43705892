/* SPDX-License-Identifier: MIT */
/*
 * ring_read - read a file into pinned memory through io_uring fixed buffers.
 *
 *   cc $(pkg-config --cflags phyr) ring_read.c $(pkg-config --libs phyr) -luring
 *   ./ring_read FILE
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <phyr.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: %s: %s\n", what, strerror(-rc), phyr_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	size_t len = (size_t)st.st_size;

	/* Memory the kernel can back with huge pages: 2 MiB aligned, THP asked. */
	void *buf;
	if (posix_memalign(&buf, 2u << 20, len) != 0)
		return 1;
	madvise(buf, len, MADV_HUGEPAGE);

	phyr_t *r;
	ring_reg_t *reg;
	struct io_uring ring;
	int rc = phyr_pin(buf, len, PHYR_PIN_WRITE, &r);
	if (rc)
		return fail("phyr_pin", rc);
	if ((rc = io_uring_queue_init(8, &ring, 0)))
		return fail("io_uring_queue_init", rc);
	if ((rc = ring_register_ranges(&ring, &r, 1, 0, &reg)))
		return fail("ring_register_ranges", rc);
	phyr_unpin(r); /* the registration holds its own reference */

	/* One request at a time, each told by ring_reg_lookup which buffer it
	 * lands in and how much of it fits there. */
	size_t done = 0;
	while (done < len) {
		unsigned idx;
		size_t avail;
		char *at = (char *)buf + done;
		if ((rc = ring_reg_lookup(reg, at, len - done < CHUNK ? len - done : CHUNK, &idx, &avail)))
			return fail("ring_reg_lookup", rc);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read_fixed(sqe, fd, at, (unsigned)avail, done, (int)idx);
		io_uring_submit(&ring);
		struct io_uring_cqe *cqe;
		io_uring_wait_cqe(&ring, &cqe);
		if (cqe->res <= 0)
			return fail("READ_FIXED", cqe->res ? cqe->res : -EIO);
		done += (size_t)cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}

	int n = ring_reg_bufs(reg, NULL, 0);
	printf("read %zu bytes of %s through %d fixed buffer%s\n", done, argv[1], n, n == 1 ? "" : "s");
	ring_unregister_ranges(reg);
	io_uring_queue_exit(&ring);
	free(buf);
	close(fd);
	return 0;
}

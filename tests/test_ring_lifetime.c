/* SPDX-License-Identifier: MIT */
/*
 * A registration outlives what a program does behind libphyr's back: the
 * ring's table unregistered with io_uring_unregister_buffers, libphyr's own
 * duplicate of the ring closed (and its number taken by a new ring), the
 * ring gone altogether.  ring_unregister_ranges still releases everything
 * libphyr holds for it -- no lock, no pin, no table left that no call can
 * release -- and never touches a ring that is not the one registered in.
 * And more registrations live at once than 0.3's limit of 65,536.
 */
#include "ring_io.h"

#include <dirent.h>
#include <sys/resource.h>

/* The io_uring descriptor that is in `after` and not in `before`. */
static int new_ring_fd(const int *before, int nb, const int *after, int na)
{
	int found = -1;
	for (int i = 0; i < na; i++) {
		int seen = 0;
		for (int j = 0; j < nb; j++)
			seen |= before[j] == after[i];
		if (!seen) {
			CHECK(found < 0, "two new io_uring descriptors: %d and %d", found, after[i]);
			found = after[i];
		}
	}
	CHECK(found >= 0, "no new io_uring descriptor");
	return found;
}

/* Registers r in ring; returns the descriptor libphyr made for it (its
 * duplicate of the ring), the one io_uring descriptor that is new. */
static int register_finding_duplicate(struct io_uring *ring, phyr_t *r, ring_reg_t **reg)
{
	int before[64], after[64];
	int nb = io_uring_fds(before, 64);
	CHECK_RC(ring_register_ranges(ring, &r, 1, 0, reg), 0);
	return new_ring_fd(before, nb, after, io_uring_fds(after, 64));
}

/* The program unregisters the table behind libphyr's back: a registration
 * there is refused saying so; unregistering releases every lock; the next
 * registration makes a new table that works. */
static void table_unregistered(void)
{
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	char *p = base_alloc(256 * KiB);
	phyr_t *r[3];
	ring_reg_t *reg[3];
	for (int i = 0; i < 3; i++) {
		CHECK_RC(phyr_pin(p + (uint64_t)i * 64 * KiB, 64 * KiB, PHYR_PIN_WRITE, &r[i]), 0);
		if (i < 2)
			CHECK_RC(ring_register_ranges(&ring, &r[i], 1, 0, &reg[i]), 0);
	}
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 2, "%d buffers", fdinfo_bufs(ring.ring_fd, NULL));
	CHECK_RC(io_uring_unregister_buffers(&ring), 0);

	CHECK_RC(ring_register_ranges(&ring, &r[2], 1, 0, &reg[2]), -ENXIO);
	CHECK(strstr(phyr_last_error(), "behind libphyr's back"), "message: %s", phyr_last_error());
	CHECK_RC(ring_unregister_ranges(reg[0]), 0);
	CHECK_RC(ring_unregister_ranges(reg[1]), 0);
	CHECK_RC(ring_unregister_ranges(reg[1]), -EINVAL);
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_unpin(r[i]), 0);
	CHECK_NOTHING_LOCKED(p, 256 * KiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());

	/* libphyr forgot the ring with its last registration: a new one makes a
	 * table of its own, and fixed reads through it are right. */
	CHECK_RC(phyr_pin(p, 256 * KiB, PHYR_PIN_WRITE, &r[0]), 0);
	CHECK_RC(ring_register_ranges(&ring, &r[0], 1, 0, &reg[0]), 0);
	read_checked(&ring, reg[0], p, 256 * KiB, 71, "the new table");
	CHECK_RC(ring_unregister_ranges(reg[0]), 0);
	CHECK_RC(phyr_unpin(r[0]), 0);
	CHECK(ring_has_no_table(&ring), "the new table outlived its registration");
	io_uring_queue_exit(&ring);
	munmap(p, 256 * KiB);
}

/* The program closes libphyr's duplicate of its ring (a daemon closing
 * every descriptor) and a new ring of its takes the number.  Unregistering
 * empties the right ring, through the program's own descriptor of it, and
 * leaves the new ring's table alone. */
static void duplicate_closed(void)
{
	struct io_uring ring, other;
	ring_or_skip(&ring, QD);
	char *p = base_alloc(128 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 128 * KiB, PHYR_PIN_WRITE, &r), 0);
	int before[64];
	int nb = io_uring_fds(before, 64);
	int dup = register_finding_duplicate(&ring, r, &reg);
	CHECK_RC(phyr_unpin(r), 0);

	CHECK(close(dup) == 0, "close libphyr's duplicate %d: %s", dup, strerror(errno));
	CHECK_RC(io_uring_queue_init(8, &other, 0), 0);
	/* The other ring at libphyr's old number, as the next open would put it
	 * where libphyr's numbers are low. */
	CHECK(dup2(other.ring_fd, dup) == dup, "dup2: %s", strerror(errno));
	struct iovec iov = { p + 64 * KiB, 4096 };
	CHECK_RC(io_uring_register_buffers(&other, &iov, 1), 0);

	/* A second registration in the ring finds it through the caller's
	 * descriptor again. */
	phyr_t *r2;
	ring_reg_t *reg2;
	CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_WRITE, &r2), 0);
	CHECK_RC(ring_register_ranges(&ring, &r2, 1, 0, &reg2), 0);
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 2, "the ring holds %d buffers", fdinfo_bufs(ring.ring_fd, NULL));
	read_checked(&ring, reg2, p, 64 * KiB, 72, "the second registration");
	CHECK_RC(phyr_unpin(r2), 0);

	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(ring_unregister_ranges(reg2), 0);
	CHECK(fdinfo_bufs(other.ring_fd, NULL) == 1, "libphyr emptied the other ring's table: %d buffers",
	      fdinfo_bufs(other.ring_fd, NULL));
	CHECK(ring_has_no_table(&ring), "the ring's table outlived its registrations");
	CHECK_NOTHING_LOCKED(p, 128 * KiB);
	CHECK(fdinfo_bufs(dup, NULL) == 1, "the other ring at libphyr's old number lost its buffer");
	io_uring_unregister_buffers(&other);
	io_uring_queue_exit(&other);
	close(dup);
	io_uring_queue_exit(&ring);
	int nf = io_uring_fds(before, 64);
	CHECK(nf == nb - 1, "%d io_uring descriptors left, %d before the ring was made", nf, nb - 1);
	munmap(p, 128 * KiB);
}

/* The ring is gone altogether: the program exited it and closed libphyr's
 * duplicate.  Unregistering releases the locks; the kernel's pins went
 * with the ring. */
static void ring_gone(void)
{
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	char *p = base_alloc(128 * KiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 128 * KiB, PHYR_PIN_WRITE, &r), 0);
	int dup = register_finding_duplicate(&ring, r, &reg);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_bytes() >= 128 * KiB, "VmPin %" PRIu64 " with the buffer registered", vmpin_bytes());
	io_uring_queue_exit(&ring);
	CHECK(close(dup) == 0, "close: %s", strerror(errno));
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_NOTHING_LOCKED(p, 128 * KiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	CHECK(vmpin_reaches(0) == 0, "VmPin %" PRIu64 " after the ring went", vmpin_bytes());
	munmap(p, 128 * KiB);
}

/* 0.3 held at most 65,536 live registrations.  One page registered 65,537
 * times over five rings: every handle works, the last one too. */
static void past_65536(void)
{
	enum { N = 65537, RINGS = 5 };
	struct rlimit rl;
	if (!has_cap(T_CAP_IPC_LOCK) && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)N * PAGE + 8 * MiB) {
		skip("io_uring charges 4 KiB per registration, and %d of them pass RLIMIT_MEMLOCK (%llu bytes) "
		     "without CAP_IPC_LOCK", N, (unsigned long long)rl.rlim_cur);
	}
	static struct io_uring rings[RINGS];
	static ring_reg_t *regs[N];
	for (int i = 0; i < RINGS; i++)
		if (i == 0)
			ring_or_skip(&rings[i], 4);
		else
			CHECK_RC(io_uring_queue_init(4, &rings[i], 0), 0);
	char *p = base_alloc(PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, PAGE, PHYR_PIN_WRITE, &r), 0);
	for (int i = 0; i < N; i++)
		CHECK_RC(ring_register_ranges(&rings[i / 16384], &r, 1, 0, &regs[i]), 0);
	CHECK_RC(phyr_unpin(r), 0);
	for (int i = 0; i < N; i += 4099) {
		unsigned idx;
		size_t avail;
		CHECK_RC(ring_reg_lookup(regs[i], p + 8, 100, &idx, &avail), 0);
		CHECK(idx == (unsigned)(i % 16384) && avail == 100, "registration %d: slot %u", i, idx);
	}
	unsigned idx;
	size_t avail;
	CHECK_RC(ring_reg_lookup(regs[N - 1], p, 1, &idx, &avail), 0);
	CHECK(fdinfo_bufs(rings[RINGS - 1].ring_fd, NULL) == N - 4 * 16384, "the last ring holds %d buffers",
	      fdinfo_bufs(rings[RINGS - 1].ring_fd, NULL));
	for (int i = 0; i < N; i++)
		CHECK_RC(ring_unregister_ranges(regs[i]), 0);
	CHECK_RC(ring_reg_lookup(regs[N - 1], p, 1, &idx, &avail), -EINVAL);
	for (int i = 0; i < RINGS; i++) {
		CHECK(ring_has_no_table(&rings[i]), "ring %d kept a table", i);
		io_uring_queue_exit(&rings[i]);
	}
	CHECK_NOTHING_LOCKED(p, PAGE);
	munmap(p, PAGE);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(table_unregistered);
	RUN(duplicate_closed);
	RUN(ring_gone);
	RUN(past_65536);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * inspectee - a process of known layout for test_inspect.py to inspect with
 * phyr-inspect.  It links no libphyr call it makes: the tool must need
 * nothing in its target.  Prints "NAME ADDR LEN" per region (decimal), then
 * "ready", and waits until stdin closes.
 *
 *   inspectee           THP with stray pages, MADV_NOHUGEPAGE, hugetlb (if
 *                       reserved), a 1 MiB mapping, a locked mapping, and an
 *                       io_uring with a coalescing and a non-coalescing buffer
 *                       (THP, then 4 KiB pages)
 *   inspectee prctl     the same THP mapping in a process with
 *                       PR_SET_THP_DISABLE
 *   inspectee many N B  N separate small mappings and one ring of B 4 KiB
 *                       buffers (the speed bench)
 */
#include "ring_io.h"

#include <sys/prctl.h>
#include <sys/stat.h>

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

static void report(const char *name, const void *p, uint64_t len)
{
	printf("%s %" PRIu64 " %" PRIu64 "\n", name, U(p), len);
}


static void wait_for_eof(void)
{
	printf("ready\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
}

static void many(int n, int bufs)
{
	/* Alternating protections keep neighbours from merging into one VMA. */
	char *area = mmap(NULL, (size_t)n * 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int i = 0; i < n; i++)
		CHECK(mprotect(area + (size_t)i * 2 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
	report("many", area, (uint64_t)n * 2 * PAGE);
	struct io_uring ring;
	CHECK(io_uring_queue_init(8, &ring, 0) == 0, "io_uring_queue_init");
	char *mem = map_aligned((size_t)bufs * PAGE, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	memset(mem, 1, (size_t)bufs * PAGE);
	struct iovec *iov = calloc((size_t)bufs, sizeof *iov);
	for (int i = 0; i < bufs; i++)
		iov[i] = (struct iovec){ mem + (size_t)i * PAGE, PAGE };
	int rc = io_uring_register_buffers(&ring, iov, (unsigned)bufs);
	CHECK(rc == 0, "io_uring_register_buffers: %s", strerror(-rc));
	report("ring", mem, (uint64_t)bufs * PAGE);
	wait_for_eof();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "many") == 0) {
		many(argc > 2 ? atoi(argv[2]) : 30000, argc > 3 ? atoi(argv[3]) : 16384);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "prctl") == 0) {
		CHECK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "PR_SET_THP_DISABLE: %s", strerror(errno));
		char *p = map_aligned(4 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		madvise(p, 4 * MiB, MADV_HUGEPAGE);
		memset(p, 1, 4 * MiB);
		report("prctl", p, 4 * MiB);
		wait_for_eof();
		return 0;
	}

	/* THP, 8 MiB: extents 1 and 3 split by a stray page each. */
	char *thp = thp_alloc(8 * MiB);
	eligible_stray(thp, 2 * MiB + 0x3000);
	eligible_stray(thp, 6 * MiB);
	report("thp", thp, 8 * MiB);

	char *nohuge = map_aligned(4 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(nohuge, 4 * MiB, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE");
	memset(nohuge, 2, 4 * MiB);
	report("nohuge", nohuge, 4 * MiB);

	char *small = map_aligned(1 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	madvise(small, 1 * MiB, MADV_HUGEPAGE);
	memset(small, 3, 1 * MiB);
	report("small", small, 1 * MiB);

	char *locked = map_aligned(2 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	madvise(locked, 2 * MiB, MADV_NOHUGEPAGE); /* keeps it its own VMA */
	CHECK(mlock(locked, 2 * MiB) == 0, "mlock: %s", strerror(errno));
	report("locked", locked, 2 * MiB);

	char *tlb = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
			 -1, 0);
	if (tlb != MAP_FAILED) {
		memset(tlb, 4, 4 * MiB);
		report("hugetlb", tlb, 4 * MiB);
	}

	/* An io_uring: buffer 0 all THP (coalesces on 6.11+), buffer 1 half THP
	 * and half 4 KiB pages (never coalesces). */
	struct io_uring ring;
	int rc = io_uring_queue_init(8, &ring, 0);
	if (rc == 0) {
		char *whole = thp_alloc(4 * MiB);
		/* 2 MiB of THP, then 2 MiB of 4 KiB folios (MADV_NOHUGEPAGE before
		 * the first touch): a 4 KiB piece of a split huge page would be
		 * charged by the kernel as its whole huge page. */
		char *frag = map_aligned(4 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		CHECK(madvise(frag, 2 * MiB, MADV_HUGEPAGE) == 0 && madvise(frag + 2 * MiB, 2 * MiB, MADV_NOHUGEPAGE) == 0,
		      "madvise: %s", strerror(errno));
		memset(frag, 6, 4 * MiB);
		struct iovec iov[2] = { { whole, 4 * MiB }, { frag, 4 * MiB } };
		rc = io_uring_register_buffers(&ring, iov, 2);
		CHECK(rc == 0, "io_uring_register_buffers: %s", strerror(-rc));
		/* A second descriptor of the same ring, as libphyr keeps of every
		 * ring it registers in: one ring, two fds. */
		int twin = dup(ring.ring_fd);
		CHECK(twin >= 0, "dup: %s", strerror(errno));
		printf("ring_fd %d %d\n", ring.ring_fd, twin);
		report("buf0", whole, 4 * MiB);
		report("buf1", frag, 4 * MiB);
		printf("vmpin %" PRIu64 " 0\n", vmpin_bytes());

		/* A ring whose descriptor is closed: its mappings keep it alive. */
		struct io_uring hidden;
		if (io_uring_queue_init(4, &hidden, 0) == 0) {
			struct stat st;
			CHECK(fstat(hidden.ring_fd, &st) == 0, "fstat: %s", strerror(errno));
			close(hidden.ring_fd);
			printf("hidden_ring %llu 0\n", (unsigned long long)st.st_ino);
		}
	}

	/* Names the table must not send to a terminal raw, and spaces the
	 * kernel prints as they are. */
	int odd = memfd_create("odd \x1b[31m name", 0);
	CHECK(odd >= 0 && ftruncate(odd, 4096) == 0, "memfd_create: %s", strerror(errno));
	char *oddmap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, odd, 0);
	CHECK(oddmap != MAP_FAILED, "mmap memfd: %s", strerror(errno));
	oddmap[0] = 1;
	report("odd", oddmap, 4096);
	wait_for_eof();
	return 0;
}

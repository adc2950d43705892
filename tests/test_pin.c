/* SPDX-License-Identifier: MIT */
/* phyr_pin / phyr_unpin: whole-folio locking on THP and base pages. */
#include "harness.h"

#include <sys/syscall.h>
#include <fcntl.h>

/* Pinning [3 MiB + 100, +8 MiB) of THP locks exactly [2 MiB, 12 MiB) and the
 * whole region stays PMD-mapped. */
static void thp_edges_lock_whole_folios(void)
{
	char *p = thp_alloc(32 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 3 * MiB + 100, 8 * MiB, 0, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 32 * MiB, p + 2 * MiB, p + 12 * MiB);
	CHECK(huge_bytes_in(p, 32 * MiB) == 32 * MiB, "pin split a huge mapping: %" PRIu64 " huge bytes left",
	      huge_bytes_in(p, 32 * MiB));

	void *a;
	size_t len;
	CHECK_RC(phyr_range(r, &a, &len), 0);
	CHECK(a == p + 3 * MiB + 100 && len == 8 * MiB, "range %p +%zu", a, len);

	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 1, "uniform THP gave %d segments", n);
	CHECK(s[0].page_shift == 21 && s[0].flags == PHYR_SEG_HUGE && s[0].phys == PHYR_PHYS_UNKNOWN,
	      "segment shift %u flags %#x phys %#" PRIx64, s[0].page_shift, s[0].flags, s[0].phys);

	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 32 * MiB);
	CHECK(huge_bytes_in(p, 32 * MiB) == 32 * MiB, "unpin split a huge mapping");
	munmap(p, 32 * MiB);
}

/* Base pages lock per page: [100, 5100) is pages 0 and 1. */
static void base_pages_lock_per_page(void)
{
	char *p = base_alloc(1 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 100, 5000, 0, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 1 * MiB, p, p + 2 * PAGE);
	struct phyr_seg s[4];
	int n = segs_of(r, s, 4);
	CHECK(n == 1 && s[0].page_shift == 12 && s[0].flags == 0, "n %d shift %u flags %#x", n, s[0].page_shift, s[0].flags);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 1 * MiB);
	munmap(p, 1 * MiB);
}

/* Memory never touched is populated as THP before it is locked, so the lock
 * still covers whole huge pages. */
static void untouched_thp_is_populated_huge(void)
{
	char *p = map_aligned(32 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, 32 * MiB, MADV_HUGEPAGE) == 0, "madvise");
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 3 * MiB + 100, 8 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 32 * MiB, p + 2 * MiB, p + 12 * MiB);
	uint64_t huge = huge_bytes_in(p + 2 * MiB, 10 * MiB);
	if (huge != 10 * MiB) {
		phyr_unpin(r);
		skip("populating gave %" PRIu64 " of 10 MiB as THP: memory too fragmented to test", huge);
	}
	struct phyr_seg s[4];
	CHECK(segs_of(r, s, 4) == 1 && s[0].flags == PHYR_SEG_HUGE, "populated THP not reported huge");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 32 * MiB);
	munmap(p, 32 * MiB);
}

/* A read-only mapping pins without PHYR_PIN_WRITE. */
static void read_only_without_write(void)
{
	char *p = map_aligned(64 * KiB, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	memset(p, 1, 64 * KiB);
	CHECK(mprotect(p, 64 * KiB, PROT_READ) == 0, "mprotect");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 64 * KiB, 0, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 64 * KiB);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 64 * KiB);
	munmap(p, 64 * KiB);
}

/* Untouched private memory whose second half is read-only: each part is
 * faulted in as its own mapping allows, the read-only part never by a write
 * (on the touching fallback such a write would kill the process). */
static void mixed_permissions_untouched(void)
{
	char *p = map_aligned(8 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(mprotect(p + 4 * PAGE, 4 * PAGE, PROT_READ) == 0, "mprotect");
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 10, 8 * PAGE - 20, 0, &r), 0);
	CHECK_LOCKED_EXACTLY(p, 8 * PAGE, p, p + 8 * PAGE);
	CHECK(p[0] == 0 && p[7 * PAGE] == 0, "populated pages read back wrong");
	phyr_t *w;
	CHECK_RC(phyr_pin(p, 8 * PAGE, PHYR_PIN_WRITE, &w), -EACCES);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 8 * PAGE);
	munmap(p, 8 * PAGE);
}

/* Shared memory (memfd) is reported PHYR_SEG_SHARED and pins for writing. */
static void shared_memfd(void)
{
	int fd = (int)syscall(SYS_memfd_create, "phyr-test", 0);
	CHECK(fd >= 0 && ftruncate(fd, 1 * MiB) == 0, "memfd: %s", strerror(errno));
	char *p = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap memfd");
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 10, 200 * KiB, PHYR_PIN_WRITE, &r), 0);
	struct phyr_seg s[4];
	int n = segs_of(r, s, 4);
	CHECK(n == 1 && (s[0].flags & PHYR_SEG_SHARED) && s[0].page_shift == 12, "memfd: n %d flags %#x", n, s[0].flags);
	CHECK_LOCKED_EXACTLY(p, 1 * MiB, p, p + 204 * KiB);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 1 * MiB);
	munmap(p, 1 * MiB);
	close(fd);
}

/* A program that closes every descriptor it did not open itself (daemons
 * do) and reuses the numbers: libphyr notices and opens its /proc files again
 * instead of reading whatever took their place. */
static void descriptors_closed_behind_our_back(void)
{
	char *p = thp_alloc(8 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 8 * MiB, 0, &r), 0); /* libphyr has its files open now */
	CHECK_RC(phyr_unpin(r), 0);
	int replaced = 0;
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], target[256];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strstr(target, "/pagemap") || strstr(target, "/maps")) {
			int junk = open("/dev/zero", O_RDONLY);
			CHECK(junk >= 0 && dup2(junk, fd) == fd, "dup2");
			close(junk);
			replaced++;
		}
	}
	CHECK(replaced > 0, "libphyr keeps no /proc descriptors open? nothing to replace");
	CHECK_RC(phyr_pin(p + 100, 4 * MiB, 0, &r), 0);
	struct phyr_seg s[4];
	CHECK(segs_of(r, s, 4) == 1 && s[0].flags == PHYR_SEG_HUGE, "after the swap: flags %#x", s[0].flags);
	CHECK_LOCKED_EXACTLY(p, 8 * MiB, p, p + 6 * MiB);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 8 * MiB);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(thp_edges_lock_whole_folios);
	RUN(base_pages_lock_per_page);
	RUN(read_only_without_write);
	RUN(mixed_permissions_untouched);
	RUN(shared_memfd);
	RUN(descriptors_closed_behind_our_back);
	RUN(untouched_thp_is_populated_huge);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after every range was released", vmlck_bytes());
	return t_done();
}

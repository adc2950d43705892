/* SPDX-License-Identifier: MIT */
/*
 * The address space changes under live ranges: munmap, a new mapping at the
 * same address, mremap (moved, grown in place), racing munmaps.  A pin that
 * succeeds has its memory locked now; a release unlocks all of it that is
 * still mapped, and no lock libphyr made outlives the last unpin, wherever
 * the caller moved the memory.  Lock state is read back from smaps.
 */
#include "ring_io.h"

#include <pthread.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* New anonymous memory exactly at p (nothing may be mapped there). */
static char *map_again_at(char *p, size_t len, int huge)
{
	char *q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(q == p, "mmap at %p: got %p (%s)", (void *)p, (void *)q, strerror(errno));
	madvise(q, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(q, 0x44, len);
	return q;
}

/* Pin, unmap, map new memory at the same address, pin that: the second pin
 * must lock the new memory although the count says the address is locked. */
static void new_memory_at_a_pinned_address(void)
{
	char *p = thp_alloc(8 * MiB);
	phyr_t *old, *now;
	CHECK_RC(phyr_pin(p, 8 * MiB, 0, &old), 0);
	CHECK_LOCKED_EXACTLY(p, 8 * MiB, p, p + 8 * MiB);
	CHECK(munmap(p, 8 * MiB) == 0, "munmap");
	char *q = map_again_at(p, 8 * MiB, 1);
	CHECK_NOTHING_LOCKED(q, 8 * MiB);
	CHECK_RC(phyr_pin(q + 100, 4 * MiB, 0, &now), 0);
	CHECK_LOCKED_EXACTLY(q, 8 * MiB, q, q + 6 * MiB);
	/* The old range still counts the address: the new memory stays locked
	 * until both are gone, in either order. */
	CHECK_RC(phyr_unpin(now), 0);
	CHECK_LOCKED_EXACTLY(q, 8 * MiB, q, q + 6 * MiB);
	CHECK_RC(phyr_unpin(old), 0);
	CHECK_NOTHING_LOCKED(q, 8 * MiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	munmap(q, 8 * MiB);
}

/* Bytes of [p, p+len) resident in memory, by mincore(2). */
static uint64_t resident_bytes(const void *p, size_t len)
{
	unsigned char *vec = malloc(len / PAGE + 1);
	CHECK(vec && mincore((void *)p, len, vec) == 0, "mincore: %s", strerror(errno));
	uint64_t n = 0;
	for (size_t i = 0; i < len / PAGE; i++)
		n += (vec[i] & 1) * PAGE;
	free(vec);
	return n;
}

/* New memory at a counted address, never touched: the second pin must fault
 * all of it in, on every populate path (the fallback faults only one page
 * per 2 MiB and leaves the rest to mlock). */
static void new_untouched_memory_is_faulted_in(void)
{
	char *p = base_alloc(8 * MiB);
	phyr_t *old, *now;
	CHECK_RC(phyr_pin(p, 8 * MiB, 0, &old), 0);
	CHECK(munmap(p, 8 * MiB) == 0, "munmap");
	char *q = mmap(p, 8 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(q == p, "mmap again: %s", strerror(errno));
	madvise(q, 8 * MiB, MADV_NOHUGEPAGE);
	CHECK_RC(phyr_pin(q, 8 * MiB, PHYR_PIN_WRITE, &now), 0);
	CHECK(resident_bytes(q, 8 * MiB) == 8 * MiB, "only %" PRIu64 " of 8 MiB resident after the pin",
	      resident_bytes(q, 8 * MiB));
	CHECK_LOCKED_EXACTLY(q, 8 * MiB, q, q + 8 * MiB);
	CHECK_RC(phyr_unpin(now), 0);
	CHECK_RC(phyr_unpin(old), 0);
	CHECK_NOTHING_LOCKED(q, 8 * MiB);
	munmap(q, 8 * MiB);
}

/* The same with the old memory held only by a registration. */
static void new_memory_under_a_stale_registration(void)
{
	struct io_uring ring;
	if (io_uring_queue_init(8, &ring, 0) != 0) {
		skip("no io_uring here");
	}
	char *p = base_alloc(1 * MiB);
	phyr_t *r;
	ring_reg_t *reg;
	CHECK_RC(phyr_pin(p, 1 * MiB, PHYR_PIN_WRITE, &r), 0);
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(munmap(p, 1 * MiB) == 0, "munmap");
	char *q = map_again_at(p, 1 * MiB, 0);
	CHECK_RC(phyr_pin(q, 1 * MiB, 0, &r), 0);
	CHECK_LOCKED_EXACTLY(q, 1 * MiB, q, q + 1 * MiB);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_LOCKED_EXACTLY(q, 1 * MiB, q, q + 1 * MiB);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(q, 1 * MiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	io_uring_queue_exit(&ring);
	munmap(q, 1 * MiB);
}

/* munlock(2) stops at the first hole: the release must not. */
static void unpin_after_part_was_unmapped(void)
{
	struct { uint64_t off, len; const char *what; } holes[] = {
		{ 0, 2 * MiB, "the first 2 MiB" },
		{ 6 * MiB, 2 * MiB, "a huge page in the middle" },
		{ 14 * MiB, 2 * MiB, "the last 2 MiB" },
	};
	for (unsigned i = 0; i < sizeof holes / sizeof holes[0]; i++) {
		char *p = thp_alloc(16 * MiB);
		phyr_t *r;
		CHECK_RC(phyr_pin(p, 16 * MiB, 0, &r), 0);
		CHECK(munmap(p + holes[i].off, holes[i].len) == 0, "munmap");
		CHECK_RC(phyr_unpin(r), 0);
		struct span s[4];
		int n = locked_spans(p, 16 * MiB, s, 4);
		CHECK(n == 0, "after unmapping %s: %d spans still locked, first [+%#" PRIx64 ", +%#" PRIx64 ")",
		      holes[i].what, n, s[0].lo - U(p), s[0].hi - U(p));
		munmap(p, 16 * MiB);
	}
	/* One 4 KiB page out of base pages. */
	char *b = base_alloc(64 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(b + 10, 64 * PAGE - 20, PHYR_PIN_WRITE, &r), 0);
	CHECK(munmap(b + 20 * PAGE, PAGE) == 0, "munmap");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(b, 64 * PAGE);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " left locked after unpins over holes", vmlck_bytes());
	munmap(b, 64 * PAGE);
}

/* mremap moves a locked mapping with its lock: the last unpin must find it
 * there and unlock it, and leave the caller's own locks alone. */
static void unpin_after_mremap_moved_it(int then_map_over)
{
	char *p = thp_alloc(8 * MiB);
	char *mine = base_alloc(16 * PAGE);
	CHECK(mlock(mine, 16 * PAGE) == 0, "mlock: %s", strerror(errno)); /* the caller's own */
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 5, 8 * MiB - 10, PHYR_PIN_WRITE, &r), 0);
	char *dst = map_aligned(8 * MiB, HUGE2M, PROT_NONE, MAP_PRIVATE);
	char *moved = mremap(p, 8 * MiB, 8 * MiB, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(moved == dst, "mremap: %s", strerror(errno));
	CHECK_LOCKED_EXACTLY(moved, 8 * MiB, moved, moved + 8 * MiB);
	if (then_map_over)
		map_again_at(p, 8 * MiB, 1);

	/* A moved range still reports where it was pinned. */
	void *a;
	size_t len;
	CHECK_RC(phyr_range(r, &a, &len), 0);
	CHECK(a == p + 5 && len == 8 * MiB - 10, "moved range reports %p +%zu", a, len);

	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(moved, 8 * MiB);
	if (then_map_over)
		CHECK_NOTHING_LOCKED(p, 8 * MiB);
	CHECK_LOCKED_EXACTLY(mine, 16 * PAGE, mine, mine + 16 * PAGE);
	CHECK(vmlck_bytes() == 16 * PAGE, "VmLck %" PRIu64 ", wanted only the caller's own 64 KiB", vmlck_bytes());
	munlock(mine, 16 * PAGE);
	munmap(mine, 16 * PAGE);
	munmap(moved, 8 * MiB);
	if (then_map_over)
		munmap(p, 8 * MiB);
}

/* Whether libphyr can see each VMA by address here (PROCMAP_QUERY, Linux
 * 6.11), which the partial-move case needs; not when the test runs on the
 * older kernels' path. */
static int per_vma_queries(void)
{
	const char *forced = getenv("PHYR_FORCE_FALLBACK");
	if (forced && (strstr(forced, "procmap") || strstr(forced, "scan") || strstr(forced, "pagemap")))
		return 0;
	struct { uint64_t size, flags, addr, rest[10]; } q = { sizeof q, 0x10, (uint64_t)(uintptr_t)&q, { 0 } };
	int fd = open("/proc/self/maps", O_RDONLY);
	int ok = ioctl(fd, _IOWR('f', 17, q), &q) == 0;
	close(fd);
	return ok;
}

/* The middle of a range moved elsewhere and new memory mapped over the hole:
 * the release must notice the part whose lock is gone and find it. */
static void unpin_after_part_moved_and_mapped_over(void)
{
	if (!per_vma_queries()) {
		skip("no PROCMAP_QUERY (Linux 6.11) on this path: a part replaced alone is not noticed "
		     "(libphyr.7 says so)");
	}
	char *p = base_alloc(16 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 16 * PAGE, 0, &r), 0);
	char *dst = map_aligned(4 * PAGE, PAGE, PROT_NONE, MAP_PRIVATE);
	char *moved = mremap(p + 6 * PAGE, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(moved == dst, "mremap: %s", strerror(errno));
	map_again_at(p + 6 * PAGE, 4 * PAGE, 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 16 * PAGE);
	CHECK_NOTHING_LOCKED(moved, 4 * PAGE);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after the only unpin", vmlck_bytes());
	munmap(p, 16 * PAGE);
	munmap(moved, 4 * PAGE);
}

/* The caller's own lock on the memory right after a range (an adjacent
 * mapping, there when the range was pinned) is none of libphyr's business,
 * even one with the flags libphyr's locks carry (MLOCK_ONFAULT). */
static void callers_lock_next_door_is_left_alone(void)
{
	char *both = map_aligned(32 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	memset(both, 1, 32 * PAGE);
	CHECK(mprotect(both + 16 * PAGE, 16 * PAGE, PROT_READ) == 0, "mprotect"); /* two mappings */
	CHECK(syscall(SYS_mlock2, both + 16 * PAGE, 16 * PAGE, 1 /* MLOCK_ONFAULT */) == 0, "mlock2: %s",
	      strerror(errno));
	phyr_t *r;
	CHECK_RC(phyr_pin(both, 16 * PAGE, 0, &r), 0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_LOCKED_EXACTLY(both, 32 * PAGE, both + 16 * PAGE, both + 32 * PAGE);
	munlock(both + 16 * PAGE, 16 * PAGE);
	munmap(both, 32 * PAGE);
}

/* Under mlockall(MCL_FUTURE | MCL_ONFAULT) every mapping carries the same
 * flags as libphyr's locks: a release that finds its memory gone must not
 * take the caller's locks for its own. */
static void under_mlockall(void *arg)
{
	(void)arg;
	char *other = base_alloc(64 * PAGE);
	CHECK(mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0, "mlockall: %s", strerror(errno));
	uint64_t before = vmlck_bytes();
	char *p = base_alloc(16 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 16 * PAGE, 0, &r), 0);
	CHECK(munmap(p + 4 * PAGE, PAGE) == 0, "munmap");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_LOCKED_EXACTLY(other, 64 * PAGE, other, other + 64 * PAGE);
	CHECK(vmlck_bytes() >= before, "VmLck fell from %" PRIu64 " to %" PRIu64 ": the caller's locks went",
	      before, vmlck_bytes());
}

static void callers_mlockall_is_left_alone(void)
{
	if (!has_cap(T_CAP_IPC_LOCK)) {
		skip("mlockall of the whole process needs CAP_IPC_LOCK here");
	}
	CHECK_CHILD(under_mlockall, NULL);
}

/* mremap grows a locked mapping in place and locks the growth: the last
 * unpin unlocks that too. */
static void unpin_after_mremap_grew_it(void)
{
	char *p = map_aligned(16 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(munmap(p + 8 * MiB, 8 * MiB) == 0, "munmap");
	madvise(p, 8 * MiB, MADV_HUGEPAGE);
	memset(p, 1, 8 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 8 * MiB, 0, &r), 0);
	char *g = mremap(p, 8 * MiB, 16 * MiB, 0);
	if (g == MAP_FAILED) {
		CHECK_RC(phyr_unpin(r), 0);
		munmap(p, 8 * MiB);
		skip("the mapping could not grow in place (%s)", strerror(errno));
	}
	CHECK(g == p, "mremap moved it");
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p, p + 16 * MiB);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after the growth was unpinned", vmlck_bytes());
	munmap(p, 16 * MiB);
}

/* A thread unmaps and maps memory again while another pins it: every pin
 * either succeeds with its memory locked or fails with -EFAULT saying the
 * memory went away; never another errno, never a signal. */
#define RACE_REGION (16 * MiB)
static char *race;
static volatile int race_done;

static void *unmapper(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	while (!race_done) {
		char *block = race + (next_rand(&seed) % (RACE_REGION / HUGE2M)) * HUGE2M;
		munmap(block, HUGE2M);
		usleep(500);
		char *q = mmap(block, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		CHECK(q == block, "mmap again: %s", strerror(errno));
		usleep(500);
	}
	return NULL;
}

static void pins_race_with_munmap(void)
{
	race = thp_alloc(RACE_REGION);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, unmapper, (void *)(uintptr_t)77) == 0, "pthread_create");
	uint64_t seed = 5;
	int ok = 0, gone = 0;
	for (int i = 0; i < rounds(3000); i++) {
		uint64_t off = next_rand(&seed) % (RACE_REGION - 4 * MiB);
		phyr_t *r;
		int rc = phyr_pin(race + off, 1 + next_rand(&seed) % (4 * MiB), next_rand(&seed) % 2 ? PHYR_PIN_WRITE : 0, &r);
		if (rc == 0) {
			ok++;
			CHECK_RC(phyr_unpin(r), 0);
		} else {
			CHECK(rc == -EFAULT, "a pin racing munmap returned %d (%s): %s", rc, strerror(-rc), phyr_last_error());
			CHECK(strstr(phyr_last_error(), "unmapped") || strstr(phyr_last_error(), "not mapped"),
			      "message: %s", phyr_last_error());
			gone++;
		}
	}
	race_done = 1;
	pthread_join(t, NULL);
	fprintf(stderr, "racing munmap: %d pins succeeded, %d found their memory gone\n", ok, gone);
	CHECK(ok > 0, "no pin ever succeeded");
	CHECK_NOTHING_LOCKED(race, RACE_REGION);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after the race", vmlck_bytes());
	munmap(race, RACE_REGION);
}

/* Locking part of a mapping splits it; past vm.max_map_count mlock says
 * ENOMEM, and the message must say it is the mapping count, not memory. */
static void fewer_mappings_allowed(void *arg)
{
	(void)arg;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int count = 0;
	while (fgets(line, sizeof line, f))
		count++;
	fclose(f);
	char *p = base_alloc(256 * PAGE);
	f = fopen("/proc/sys/vm/max_map_count", "w");
	CHECK(f && fprintf(f, "%d\n", count + 12) > 0 && fclose(f) == 0, "write max_map_count: %s", strerror(errno));
	int rc = 0, i;
	phyr_t *r[128];
	for (i = 0; i < 128 && rc == 0; i++)
		rc = phyr_pin(p + 2 * (uint64_t)i * PAGE, PAGE, 0, &r[i]);
	CHECK(rc == -ENOMEM, "pin %d past vm.max_map_count returned %d", i, rc);
	CHECK(strstr(phyr_last_error(), "vm.max_map_count"), "message: %s", phyr_last_error());
	for (int k = 0; k < i - 1; k++)
		CHECK_RC(phyr_unpin(r[k]), 0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
}

static void mapping_count_limit(void)
{
	if (geteuid() != 0) {
		skip("vm.max_map_count can only be lowered by root");
	}
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	int old = 0;
	CHECK(f && fscanf(f, "%d", &old) == 1, "read max_map_count");
	fclose(f);
	int st = in_child(fewer_mappings_allowed, NULL);
	f = fopen("/proc/sys/vm/max_map_count", "w");
	CHECK(f && fprintf(f, "%d\n", old) > 0 && fclose(f) == 0, "restoring vm.max_map_count to %d", old);
	CHECK(st == 0, "the child with fewer mappings allowed failed (%d)", st);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(new_memory_at_a_pinned_address);
	RUN(new_untouched_memory_is_faulted_in);
	RUN(new_memory_under_a_stale_registration);
	RUN(unpin_after_part_was_unmapped);
	RUN(unpin_after_mremap_moved_it, 0);
	RUN(unpin_after_mremap_moved_it, 1);
	RUN(unpin_after_mremap_grew_it);
	RUN(unpin_after_part_moved_and_mapped_over);
	RUN(callers_lock_next_door_is_left_alone);
	RUN(callers_mlockall_is_left_alone);
	RUN(pins_race_with_munmap);
	RUN(mapping_count_limit);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " at the end", vmlck_bytes());
	return t_done();
}

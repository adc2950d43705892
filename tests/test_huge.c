/* SPDX-License-Identifier: MIT */
/*
 * PHYR_PIN_HUGE: memory made huge before it is pinned, seen from the
 * kernel's side (cases whose stray pages khugepaged collapses meanwhile
 * start again: its sysfs counter says when) -- PMD mappings by PAGEMAP_SCAN (smaps before 6.7), PFNs
 * from pagemap as root, the ring's buffers from fdinfo -- and every byte
 * compared with what was written before the pin.
 */
#include "ring_io.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

static void fill_random(char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = next_rand(&seed);
		memcpy(p + i, &v, 8);
	}
}

/* khugepaged collapsed pages since `k` (a case that leaves stray pages
 * eligible then starts again: its "before" is no longer what it made). */
#define RACED(k) (khugepaged_collapses() != (k))

/* Undoes a case that khugepaged interfered with; returns 1 (run again). */
static int again(char *p, size_t len, char *copy, phyr_t *r)
{
	fprintf(stderr, "note: khugepaged collapsed pages under the test: running the case again\n");
	if (r)
		CHECK_RC(phyr_unpin(r), 0);
	free(copy);
	munmap(p, len);
	return 1;
}

static const char *saved_error(void)
{
	static char saved[512];
	phyr_t *r;
	CHECK_RC(phyr_pin(NULL, 0, 0, &r), -EINVAL);
	snprintf(saved, sizeof saved, "%s", phyr_last_error());
	CHECK(saved[0], "no error message to compare with");
	return saved;
}

/*
 * THP with stray pages in three of four extents, one of them outside the
 * range but in an extent the range partly covers: all four huge afterwards,
 * one HUGE segment of page shift 21, every byte as it was.
 */
static int strays_become_huge(void)
{
	uint64_t k = khugepaged_collapses();
	size_t len = 8 * MiB;
	char *p = thp_alloc(len);
	fill_random(p, len, 0x5eed);
	eligible_stray(p, 0x1000);           /* extent 0: outside the range below */
	eligible_stray(p, 4 * MiB + 0x3000); /* extent 2 */
	eligible_stray(p, 6 * MiB + 0x1ff000); /* extent 3, its last page */
	char *copy = malloc(len);
	CHECK(copy, "malloc");
	memcpy(copy, p, len);
	uint64_t before = huge_bytes_in(p, len);
	if (before != len - 6 * MiB && RACED(k))
		return again(p, len, copy, NULL);
	CHECK(before == len - 6 * MiB, "%" PRIu64 " bytes huge before the pin, expected %" PRIu64, before,
	      (uint64_t)(len - 6 * MiB));

	const char *err = saved_error();
	char want_err[512];
	snprintf(want_err, sizeof want_err, "%s", err);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 1 * MiB + 100, len - 1 * MiB - 100, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r), 0);
	if (RACED(k))
		return again(p, len, copy, r);
	uint64_t after = huge_bytes_in(p, len);
	CHECK(after == len, "%" PRIu64 " of %zu bytes huge after PHYR_PIN_HUGE", after, len);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 1 && s[0].page_shift == 21 && (s[0].flags & PHYR_SEG_HUGE),
	      "%d segments, first shift %u flags %#x: expected one huge segment", n, s[0].page_shift, s[0].flags);
	CHECK(memcmp(p, copy, len) == 0, "data changed by the collapse");
	CHECK(strcmp(phyr_last_error(), want_err) == 0, "phyr_last_error() changed to \"%s\"", phyr_last_error());
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(huge_bytes_in(p, len) == len, "huge mappings lost at unpin");
	CHECK(memcmp(p, copy, len) == 0, "data changed after the unpin");
	free(copy);
	munmap(p, len);
	return 0;
}

/* 4 KiB pages written before the mapping was made eligible
 * (MADV_HUGEPAGE after the writes, madvise mode): all become huge. */
static int populated_before_eligible(void)
{
	uint64_t k = khugepaged_collapses();
	size_t len = 4 * MiB;
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	fill_random(p, len, 42);
	CHECK(madvise(p, len, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE: %s", strerror(errno));
	char *copy = malloc(len);
	CHECK(copy, "malloc");
	memcpy(copy, p, len);
	if (huge_bytes_in(p, len) != 0 && RACED(k))
		return again(p, len, copy, NULL);
	CHECK(huge_bytes_in(p, len) == 0, "memory came huge before the pin");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_HUGE, &r), 0);
	if (RACED(k))
		return again(p, len, copy, r);
	CHECK(huge_bytes_in(p, len) == len, "%" PRIu64 " of %zu bytes huge", huge_bytes_in(p, len), len);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 1 && s[0].page_shift == 21, "%d segments, first of shift %u", n, s[0].page_shift);
	CHECK(memcmp(p, copy, len) == 0, "data changed by the collapse");
	CHECK_RC(phyr_unpin(r), 0);
	free(copy);
	munmap(p, len);
	return 0;
}

/* MADV_NOHUGEPAGE memory is pinned as it is: no error, no huge page,
 * phyr_last_error() untouched. */
static void nohugepage_unchanged(void)
{
	size_t len = 4 * MiB;
	char *p = base_alloc(len);
	fill_random(p, len, 7);
	char *copy = malloc(len);
	CHECK(copy, "malloc");
	memcpy(copy, p, len);
	char want_err[512];
	snprintf(want_err, sizeof want_err, "%s", saved_error());
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r), 0);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 1 && s[0].page_shift == 12 && !(s[0].flags & PHYR_SEG_HUGE), "%d segments, shift %u flags %#x", n,
	      s[0].page_shift, s[0].flags);
	CHECK(huge_bytes_in(p, len) == 0, "MADV_NOHUGEPAGE memory became huge");
	CHECK(strcmp(phyr_last_error(), want_err) == 0, "phyr_last_error() changed to \"%s\"", phyr_last_error());
	CHECK(memcmp(p, copy, len) == 0, "data changed");
	CHECK_RC(phyr_unpin(r), 0);
	free(copy);
	munmap(p, len);
}

/*
 * Mappings that cannot hold an aligned extent stay small; one that holds a
 * single aligned extent between two misaligned ends gets exactly that one.
 */
static int too_small_or_misaligned(void)
{
	uint64_t k = khugepaged_collapses();
	char *area = map_aligned(8 * MiB, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	munmap(area, 8 * MiB);
	/* [1 MiB, 5 MiB) of a 2 MiB-aligned area: only [2, 4) is an aligned extent. */
	char *m = mmap(area + 1 * MiB, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0);
	CHECK(m == area + 1 * MiB, "mmap at %p: %s", (void *)(area + 1 * MiB), strerror(errno));
	CHECK(madvise(m, 4 * MiB, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE");
	fill_random(m, 4 * MiB, 99);
	CHECK(madvise(m, 4 * MiB, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE");
	char *copy = malloc(4 * MiB);
	CHECK(copy, "malloc");
	memcpy(copy, m, 4 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(m, 4 * MiB, PHYR_PIN_HUGE, &r), 0);
	if (RACED(k))
		return again(m, 4 * MiB, copy, r);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 3 && s[0].page_shift == 12 && s[1].page_shift == 21 && s[2].page_shift == 12 &&
	      s[1].addr == U(area) + 2 * MiB && s[1].len == 2 * MiB,
	      "%d segments (%u, %u, %u): expected 1 MiB small, [2, 4) MiB huge, 1 MiB small", n, s[0].page_shift,
	      n > 1 ? s[1].page_shift : 0, n > 2 ? s[2].page_shift : 0);
	CHECK(huge_bytes_in(m, 4 * MiB) == 2 * MiB, "%" PRIu64 " bytes huge", huge_bytes_in(m, 4 * MiB));
	CHECK(memcmp(m, copy, 4 * MiB) == 0, "data changed");
	CHECK_RC(phyr_unpin(r), 0);
	munmap(m, 4 * MiB);

	/* A 1 MiB mapping holds no extent at all. */
	char *small = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(small != MAP_FAILED, "mmap");
	madvise(small, 1 * MiB, MADV_HUGEPAGE);
	memset(small, 3, 1 * MiB);
	CHECK_RC(phyr_pin(small, 1 * MiB, PHYR_PIN_HUGE, &r), 0);
	n = segs_of(r, s, 8);
	CHECK(n == 1 && s[0].page_shift == 12, "a 1 MiB mapping: %d segments of shift %u", n, s[0].page_shift);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(small, 1 * MiB);
	free(copy);
	return 0;
}

/* hugetlb memory is huge already: pinned as it is. */
static void hugetlb_as_is(void)
{
	size_t len = 4 * MiB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
		       -1, 0);
	if (p == MAP_FAILED) {
		skip("no 2 MiB hugetlb pages (%s; make hugepages reserves them)", strerror(errno));
	}
	phyr_t *r;
	int rc = phyr_pin(p, len, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r);
	if (rc == -ENOMEM && strstr(phyr_last_error(), "hugetlb")) {
		munmap(p, len);
		skip("the 2 MiB hugetlb pool is empty");
	}
	CHECK_RC(rc, 0);
	struct phyr_seg s[4];
	int n = segs_of(r, s, 4);
	CHECK(n == 1 && s[0].page_shift == 21 && (s[0].flags & PHYR_SEG_HUGETLB), "%d segments, shift %u flags %#x", n,
	      s[0].page_shift, s[0].flags);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

/*
 * PHYR_PIN_LONGTERM | PHYR_PIN_PHYS | PHYR_PIN_HUGE (root: PFNs): the
 * addresses reported are those of the collapsed huge pages, every 4 KiB page
 * by pagemap.
 */
static int longterm_phys_collapsed(void)
{
	if (!has_cap(T_CAP_SYS_ADMIN)) {
		skip("physical addresses need CAP_SYS_ADMIN");
	}
	uint64_t k = khugepaged_collapses();
	size_t len = 8 * MiB;
	char *p = thp_alloc(len);
	fill_random(p, len, 0xabc);
	eligible_stray(p, 2 * MiB + 0x5000);
	eligible_stray(p, 6 * MiB);
	uint64_t stray_phys = phys_of(p + 2 * MiB + 0x5000);
	char *copy = malloc(len);
	CHECK(copy, "malloc");
	memcpy(copy, p, len);
	phyr_t *r;
	int rc = phyr_pin(p, len, PHYR_PIN_LONGTERM | PHYR_PIN_PHYS | PHYR_PIN_HUGE, &r);
	if (rc == -EOPNOTSUPP && strstr(phyr_last_error(), "io_uring"))
		skip("io_uring unavailable: %s", phyr_last_error());
	CHECK_RC(rc, 0);
	if (RACED(k))
		return again(p, len, copy, r);
	struct phyr_seg s[16];
	int n = segs_of(r, s, 16);
	for (int i = 0; i < n; i++) {
		CHECK(s[i].page_shift == 21 && (s[i].flags & PHYR_SEG_HUGE) && s[i].phys != PHYR_PHYS_UNKNOWN &&
		      s[i].phys % HUGE2M == 0,
		      "segment %d: shift %u flags %#x phys %#" PRIx64, i, s[i].page_shift, s[i].flags, s[i].phys);
		for (uint64_t off = 0; off < s[i].len; off += PAGE) {
			uint64_t want = phys_of((void *)(uintptr_t)(s[i].addr + off));
			CHECK(s[i].phys + off == want, "page at %#" PRIx64 ": reported %#" PRIx64 ", pagemap %#" PRIx64,
			      s[i].addr + off, s[i].phys + off, want);
		}
	}
	CHECK(phys_of(p + 2 * MiB + 0x5000) != stray_phys, "the stray page was not replaced by the collapse");
	CHECK(huge_bytes_in(p, len) == len, "not all huge");
	CHECK(memcmp(p, copy, len) == 0, "data changed by the collapse");
	CHECK_RC(phyr_unpin(r), 0);
	free(copy);
	munmap(p, len);
	return 0;
}

/*
 * The gain: registered after PHYR_PIN_HUGE, the formerly fragmented buffer
 * is one coalesced buffer (the kernel's fdinfo lists one), and fixed I/O
 * through it reads the file's bytes.
 */
static int registers_coalesced(void)
{
	uint64_t k = khugepaged_collapses();
	size_t len = 8 * MiB;
	char *p = thp_alloc(len);
	eligible_stray(p, 3 * MiB);
	eligible_stray(p, 5 * MiB + 0x2000);
	struct io_uring ring;
	ring_or_skip(&ring, 64);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_WRITE | PHYR_PIN_HUGE, &r), 0);
	if (RACED(k)) {
		io_uring_queue_exit(&ring);
		return again(p, len, NULL, r);
	}
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	struct ring_buf b[8];
	int n = ring_reg_bufs(reg, b, 8);
	CHECK(n == 1 && b[0].len == len && (b[0].flags & RING_BUF_COALESCED) == COALESCES_SEVERAL(),
	      "%d buffers, first len %zu flags %#x", n, n > 0 ? (size_t)b[0].len : 0, n > 0 ? b[0].flags : 0);
	int slots = 0;
	CHECK(fdinfo_bufs(ring.ring_fd, &slots) == 1, "fdinfo lists %d buffers", fdinfo_bufs(ring.ring_fd, &slots));
	int fd = pattern_file(len, 11);
	fixed_io(&ring, reg, fd, p, len, 0, 0, CHUNK);
	CHECK(check_pattern(p, len, 0, 11) < 0, "READ_FIXED data wrong at %ld", check_pattern(p, len, 0, 11));
	close(fd);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&ring);
	munmap(p, len);
	return 0;
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN_UNRACED(strays_become_huge);
	RUN_UNRACED(populated_before_eligible);
	RUN(nohugepage_unchanged);
	RUN_UNRACED(too_small_or_misaligned);
	RUN(hugetlb_as_is);
	RUN_UNRACED(longterm_phys_collapsed);
	RUN_UNRACED(registers_coalesced);
	return t_done();
}

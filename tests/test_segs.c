/* SPDX-License-Identifier: MIT */
/* phyr_segs: maximal uniform runs, physical addresses, non-folio memory. */
#include "harness.h"

/* THP with one stray base page at 8 MiB: huge | base | huge. */
static char *thp_with_stray_page(size_t len)
{
	char *p = thp_alloc(len);
	/* The 2 MiB around the stray page stays PTE-mapped. */
	stray_page(p, 8 * MiB);
	CHECK(huge_bytes_in(p, len) == len - 2 * MiB, "stray page layout: %" PRIu64 " huge bytes", huge_bytes_in(p, len));
	return p;
}

static void uniform_runs_without_phys(void)
{
	char *p = thp_with_stray_page(16 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 100, 16 * MiB - 200, 0, &r), 0);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 3, "huge|base|huge gave %d segments", n);
	CHECK(s[0].page_shift == 21 && s[0].flags == PHYR_SEG_HUGE && s[0].addr + s[0].len == U(p + 8 * MiB),
	      "first: shift %u flags %#x end %#" PRIx64, s[0].page_shift, s[0].flags, s[0].addr + s[0].len);
	CHECK(s[1].page_shift == 12 && s[1].flags == 0 && s[1].len == 2 * MiB, "middle: shift %u flags %#x len %#" PRIx64,
	      s[1].page_shift, s[1].flags, s[1].len);
	CHECK(s[2].page_shift == 21 && s[2].flags == PHYR_SEG_HUGE, "last: shift %u", s[2].page_shift);
	for (int i = 0; i < n; i++)
		CHECK(s[i].phys == PHYR_PHYS_UNKNOWN, "segment %d has phys without PHYR_PIN_PHYS", i);

	/* Fewer slots than segments: the count, and only nr filled. */
	struct phyr_seg one[2];
	memset(one, 0xab, sizeof one);
	CHECK_RC(phyr_segs(r, one, 1), 3);
	CHECK(one[0].addr == s[0].addr && one[1].addr == 0xababababababababULL, "phyr_segs wrote past nr");
	CHECK_RC(phyr_segs(r, NULL, 0), 3);
	CHECK_RC(phyr_segs(r, NULL, 2), -EINVAL);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 16 * MiB);
}

/* With PHYR_PIN_PHYS each segment is physically contiguous, checked page by
 * page against /proc/self/pagemap, and no two neighbours could merge. */
static void physical_segments(void)
{
	if (!has_cap(T_CAP_SYS_ADMIN)) {
		char *p = base_alloc(64 * KiB);
		phyr_t *r;
		CHECK_RC(phyr_pin(p, 64 * KiB, PHYR_PIN_PHYS, &r), -EPERM);
		CHECK(strstr(phyr_last_error(), "CAP_SYS_ADMIN") != NULL, "message: %s", phyr_last_error());
		CHECK(vmlck_bytes() == 0, "a refused pin locked memory");
		skip("physical addresses need CAP_SYS_ADMIN (the -EPERM refusal was checked instead)");
	}
	char *p = thp_with_stray_page(32 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 3 * MiB + 100, 24 * MiB, PHYR_PIN_PHYS, &r), 0);
	struct phyr_seg s[4096];
	int n = segs_of(r, s, 4096);
	for (int i = 0; i < n; i++) {
		CHECK(s[i].phys != PHYR_PHYS_UNKNOWN, "segment %d has no phys", i);
		for (uint64_t off = 0; off < s[i].len; off += PAGE - (s[i].addr + off) % PAGE) {
			uint64_t want = phys_of((void *)(uintptr_t)(s[i].addr + off));
			CHECK(want == s[i].phys + off, "segment %d +%#" PRIx64 ": phys %#" PRIx64 ", pagemap says %#" PRIx64,
			      i, off, s[i].phys + off, want);
		}
		if (s[i].page_shift == 21)
			CHECK((s[i].phys - (s[i].addr & (HUGE2M - 1))) % HUGE2M == 0 || s[i].addr % HUGE2M == 0,
			      "huge segment %d phys %#" PRIx64 " not 2 MiB-congruent to its address", i, s[i].phys);
		if (i > 0)
			CHECK(s[i - 1].page_shift != s[i].page_shift || s[i - 1].flags != s[i].flags ||
			      s[i - 1].phys + s[i - 1].len != s[i].phys, "segments %d and %d could merge", i - 1, i);
	}
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 32 * MiB);
}

/* [vvar] is VM_PFNMAP|VM_IO: described as no-folio memory, never faulted or
 * locked; a pin across [vvar] and [vdso] has one run of each. */
static void vvar_has_no_folio(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uint64_t lo = 0, hi = 0, vdso_lo = 0, vdso_hi = 0;
	while (fgets(line, sizeof line, f)) {
		uint64_t a, b;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &a, &b) != 2)
			continue;
		if (strstr(line, "[vvar]\n"))
			lo = a, hi = b;
		if (strstr(line, "[vdso]\n"))
			vdso_lo = a, vdso_hi = b;
	}
	fclose(f);
	if (!lo)
		skip("this process has no [vvar] mapping");
	uint64_t locked = vmlck_bytes();
	phyr_t *r;
	CHECK_RC(phyr_pin((void *)(uintptr_t)lo, hi - lo, 0, &r), 0);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 1 && (s[0].flags & PHYR_SEG_NOFOLIO) && s[0].phys == PHYR_PHYS_UNKNOWN,
	      "[vvar]: %d segments, flags %#x", n, s[0].flags);
	CHECK(vmlck_bytes() == locked, "[vvar] pin locked %" PRIu64 " bytes", vmlck_bytes() - locked);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_pin((void *)(uintptr_t)lo, hi - lo, PHYR_PIN_WRITE, &r), -EACCES);

	/* Across the gap-free run [vvar][vvar_vclock][vdso], when the kernel lays
	 * them out next to each other. */
	if (vdso_lo && vdso_lo > hi && vdso_lo - hi <= 64 * KiB) {
		CHECK_RC(phyr_pin((void *)(uintptr_t)lo, vdso_hi - lo, 0, &r), 0);
		n = segs_of(r, s, 8);
		CHECK(n == 2 && (s[0].flags & PHYR_SEG_NOFOLIO) && !(s[1].flags & PHYR_SEG_NOFOLIO) &&
		      s[1].addr == vdso_lo, "[vvar..vdso]: %d segments, second at %#" PRIx64, n, s[1].addr);
		CHECK_RC(phyr_unpin(r), 0);
	}
}

static void shared_and_private_flags(void)
{
	char *shared = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *priv = base_alloc(1 * MiB);
	phyr_t *a, *b;
	CHECK_RC(phyr_pin(shared, 1 * MiB, 0, &a), 0);
	CHECK_RC(phyr_pin(priv, 1 * MiB, 0, &b), 0);
	struct phyr_seg s[4];
	CHECK(segs_of(a, s, 4) == 1 && s[0].flags == PHYR_SEG_SHARED, "shared anon flags %#x", s[0].flags);
	CHECK(segs_of(b, s, 4) == 1 && s[0].flags == 0, "private anon flags %#x", s[0].flags);
	CHECK_RC(phyr_unpin(a), 0);
	CHECK_RC(phyr_unpin(b), 0);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(uniform_runs_without_phys);
	RUN(physical_segments);
	RUN(shared_and_private_flags);
	RUN(vvar_has_no_folio);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after every range was released", vmlck_bytes());
	return t_done();
}

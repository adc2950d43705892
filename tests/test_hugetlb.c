/* SPDX-License-Identifier: MIT */
/* hugetlb memory: 2 MiB and 1 GiB pages are described as such.  Needs pages
 * reserved in /proc/sys/vm/nr_hugepages (make hugepages does it as root). */
#include "harness.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

static void try_size(uint64_t page, unsigned shift)
{
	size_t len = 2 * page;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | ((int)shift << MAP_HUGE_SHIFT), -1, 0);
	if (p == MAP_FAILED) {
		skip("no %" PRIu64 " KiB hugetlb pages (%s): reserve them in "
		     "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/nr_hugepages (make hugepages)",
		     page / KiB, strerror(errno), page / KiB);
	}
	/* Touch only the first page: the pin must fault the second in itself. */
	p[0] = 1;
	phyr_t *r;
	int rc = phyr_pin(p + 100, page, PHYR_PIN_WRITE, &r);
	if (rc == -ENOMEM) {
		munmap(p, len);
		skip("%" PRIu64 " KiB pool too small for two pages: %s", page / KiB, phyr_last_error());
	}
	CHECK_RC(rc, 0);
	struct phyr_seg s[4];
	int n = segs_of(r, s, 4);
	CHECK(n == 1 && s[0].page_shift == shift &&
	      s[0].flags == (PHYR_SEG_HUGE | PHYR_SEG_HUGETLB), "%d segments, shift %u, flags %#x", n, s[0].page_shift,
	      s[0].flags);
	CHECK(p[page] == 0, "second page not readable");
	if (has_cap(T_CAP_SYS_ADMIN)) {
		phyr_t *q;
		CHECK_RC(phyr_pin(p, len, PHYR_PIN_PHYS, &q), 0);
		n = segs_of(q, s, 4);
		for (int i = 0; i < n; i++)
			CHECK(s[i].phys % page == 0 && s[i].phys == phys_of((void *)(uintptr_t)s[i].addr),
			      "hugetlb segment %d phys %#" PRIx64, i, s[i].phys);
		CHECK_RC(phyr_unpin(q), 0);
	} else {
		skip_part("physical addresses of hugetlb pages need CAP_SYS_ADMIN");
	}
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

static void pages_of_2_mib(void)
{
	try_size(2 * MiB, 21);
}

static void pages_of_1_gib(void)
{
	try_size(1 * GiB, 30);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	RUN(pages_of_2_mib);
	RUN(pages_of_1_gib);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	return t_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * NUMA: phyr_seg_nodes against the kernel's own answer for every 4 KiB page
 * (move_pages status queries), phyr_pin_node's placement (THP staying huge,
 * 4 KiB pages of an unaligned span, hugetlb from the node's pool, long-term,
 * PHYR_NODE_LOCAL under sched_setaffinity) and its refusals.  On a machine
 * with one node the one-node cases run and the rest skip; make check-kernels
 * runs this program in VMs with two nodes.
 */
#include "harness.h"
#include "ring_io.h"

#include <sched.h>

#define T_MPOL_DEFAULT 0
#define T_MPOL_BIND 2

static int nodes_with_memory(int *nodes, int max)
{
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");
	if (!f)
		return (nodes[0] = 0, 1); /* a kernel without NUMA: one node */
	int n = 0, lo, hi;
	char sep;
	while (n < max && fscanf(f, "%d", &lo) == 1) {
		hi = lo;
		if (fscanf(f, "%c", &sep) == 1 && sep == '-' && fscanf(f, "%d%c", &hi, &sep) < 1)
			break;
		for (int i = lo; i <= hi && n < max; i++)
			nodes[n++] = i;
		if (sep != ',')
			break;
	}
	fclose(f);
	return n;
}

/* The kernel's node for the page at addr (move_pages, no move), or -errno. */
static int kernel_node(const void *addr)
{
	void *page = (void *)addr;
	int status = -1;
	long rc = syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0);
	CHECK(rc == 0, "move_pages query: %s", strerror(errno));
	return status;
}

/* Every new page this thread faults comes from `node` (-1: policy back to
 * the default).  A thread policy: the mappings keep theirs. */
static void fault_on(int node)
{
	unsigned long mask = node >= 0 ? 1UL << node : 0;
	long rc = node >= 0 ? syscall(SYS_set_mempolicy, T_MPOL_BIND, &mask, 64UL)
			    : syscall(SYS_set_mempolicy, T_MPOL_DEFAULT, NULL, 0UL);
	CHECK(rc == 0, "set_mempolicy(node %d): %s", node, strerror(errno));
}

/* Words [from, to) of p faulted in on `node`, each its offset plus seed. */
static void fill_part(char *p, size_t from, size_t to, int node, uint64_t seed)
{
	fault_on(node);
	for (size_t i = from; i < to; i += 8)
		*(uint64_t *)(p + i) = i * 0x9e3779b97f4a7c15ULL + seed;
	fault_on(-1);
}

static void fill_on(char *p, size_t len, int node, uint64_t seed)
{
	fill_part(p, 0, len, node, seed);
}

/* Memory faulted in on `node`: THP (skips when it cannot be had) or 4 KiB
 * pages, each word its own offset plus seed. */
static char *thp_on(size_t len, int node, uint64_t seed)
{
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (madvise(p, len, MADV_HUGEPAGE) != 0)
		skip("madvise(MADV_HUGEPAGE): %s: this kernel has no THP", strerror(errno));
	fill_on(p, len, node, seed);
	if (huge_bytes_in(p, len) != len)
		skip("only %" PRIu64 " of %zu bytes came as THP (THP disabled or memory fragmented)",
		     huge_bytes_in(p, len), len);
	return p;
}

static char *base_on(size_t len, int node, uint64_t seed)
{
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	fill_on(p, len, node, seed);
	return p;
}

/* Words [from, to) of what fill_on wrote at p. */
static void check_filled_part(const char *p, size_t from, size_t to, uint64_t seed)
{
	for (size_t i = from; i < to; i += 8)
		CHECK(*(const uint64_t *)(p + i) == i * 0x9e3779b97f4a7c15ULL + seed,
		      "the data at +%#zx changed as its page moved", i);
}

static void check_filled(const char *p, size_t len, uint64_t seed)
{
	check_filled_part(p, 0, len, seed);
}

/* Every 4 KiB page of [lo, hi) is on `node`, as the kernel says. */
static void check_pages_on(const char *lo, const char *hi, int node, const char *what)
{
	for (const char *a = (const char *)(U(lo) & ~(PAGE - 1)); a < hi; a += PAGE) {
		int n = kernel_node(a);
		CHECK(n == node, "%s: the page at %p is on node %d, not %d", what, (void *)a, n, node);
	}
}

/*
 * phyr_seg_nodes of r agrees with the kernel on every 4 KiB page of every
 * segment, has as many entries as phyr_segs, and no two neighbours with
 * the same node could have been one segment (the split is exactly where
 * the node changes).  Returns the number of segments.
 */
static int check_nodes_against_kernel(phyr_t *r, struct phyr_seg *s, int *nodes, int max)
{
	int n = segs_of(r, s, max);
	CHECK_RC(phyr_seg_nodes(r, nodes, (unsigned)max), n);
	for (int i = 0; i < n; i++) {
		for (uint64_t a = s[i].addr & ~(PAGE - 1); a < s[i].addr + s[i].len; a += PAGE) {
			int k = kernel_node((void *)(uintptr_t)a);
			if (k < 0)
				k = -1; /* no page of its own there: the zero page */
			CHECK(k == nodes[i], "segment %d [%#" PRIx64 "+%#" PRIx64 "): the page at %#" PRIx64
			      " is on node %d, phyr_seg_nodes says %d", i, s[i].addr, s[i].len, a, k, nodes[i]);
		}
		if (i > 0 && s[i].page_shift == s[i - 1].page_shift && s[i].flags == s[i - 1].flags &&
		    s[i].phys == PHYR_PHYS_UNKNOWN)
			CHECK(nodes[i] != nodes[i - 1], "segments %d and %d: same kind, same node %d, not one segment",
			      i - 1, i, nodes[i]);
	}
	return n;
}

static int vmas_in(const void *lo, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL, "maps");
	char line[512];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		uint64_t a, b;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &a, &b) == 2 && a < U(lo) + len && b > U(lo))
			n++;
	}
	fclose(f);
	return n;
}

static int nodes[64], nnodes;

static void need_two_nodes(void)
{
	if (nnodes < 2)
		skip("this machine has %d node with memory (make check-kernels runs this case on two)", nnodes);
}

/* ------------------------------------------------------------ reporting */

/* 16 MiB, the first 2 MiB in 4 KiB pages, the rest THP: on one node every
 * segment is node 0 (the segments phyr_segs always gave); on two, the 4 KiB
 * pages change node at page 37 and the THP at 8 MiB, and the segments are
 * cut exactly there, with PHYR_PIN_PHYS or without. */
static void across_a_node_boundary(int phys)
{
	if (phys && !has_cap(T_CAP_SYS_ADMIN))
		skip("PHYR_PIN_PHYS needs CAP_SYS_ADMIN");
	size_t len = 16 * MiB;
	int two = nnodes >= 2;
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (madvise(p, len, MADV_HUGEPAGE) != 0)
		skip("madvise(MADV_HUGEPAGE): %s: this kernel has no THP", strerror(errno));
	/* The first 2 MiB in 4 KiB folios (a split THP would still be one
	 * folio, and move as one); the thread's policy places each part as it
	 * faults. */
	CHECK(madvise(p, 2 * MiB, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE");
	fill_part(p, 0, 37 * PAGE, nodes[0], 1);
	fill_part(p, 37 * PAGE, 2 * MiB, nodes[two], 1);
	fill_part(p, 2 * MiB, len / 2, nodes[0], 1);
	fill_part(p, len / 2, len, nodes[two], 1);
	if (huge_bytes_in(p, len) != len - 2 * MiB)
		skip("only %" PRIu64 " bytes came as THP", huge_bytes_in(p, len));
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 100, len - 200, phys ? PHYR_PIN_PHYS : 0, &r), 0);
	struct phyr_seg s[1024];
	int got[1024];
	int n = check_nodes_against_kernel(r, s, got, 1024);
	if (two) {
		int cut4k = 0, cut2m = 0;
		for (int i = 1; i < n; i++) {
			if (s[i].addr == U(p) + 37 * PAGE && got[i - 1] == nodes[0] && got[i] == nodes[1])
				cut4k = 1;
			if (s[i].addr == U(p) + len / 2 && got[i - 1] == nodes[0] && got[i] == nodes[1])
				cut2m = 1;
		}
		if (!cut4k || !cut2m)
			for (int i = 0; i < n; i++)
				fprintf(stderr, "  segment %d: %#" PRIx64 "+%#" PRIx64 " shift %u node %d\n", i,
					s[i].addr - U(p), s[i].len, s[i].page_shift, got[i]);
		CHECK(cut4k, "no segment boundary at page 37, where the node changes");
		CHECK(cut2m, "no segment boundary at 8 MiB, where the node changes");
	} else {
		CHECK(n <= 3 || phys, "%d segments on one node without PHYR_PIN_PHYS (base | huge, or one more)", n);
		for (int i = 0; i < n; i++)
			CHECK(got[i] == nodes[0], "segment %d: node %d on a one-node machine", i, got[i]);
	}
	/* A split keeps each half's nodes. */
	phyr_t *tail;
	CHECK_RC(phyr_split(r, len / 2 - 100, &tail), 0);
	check_nodes_against_kernel(r, s, got, 1024);
	check_nodes_against_kernel(tail, s, got, 1024);
	CHECK_RC(phyr_unpin(tail), 0);
	CHECK_RC(phyr_unpin(r), 0);
	check_filled(p, len, 1);
	munmap(p, len);
}

static void reporting_without_phys(void) { across_a_node_boundary(0); }
static void reporting_with_phys(void) { across_a_node_boundary(1); }

/* Memory with no page of its own (the shared zero page a read-only pin of
 * read-only memory keeps) has node -1: move_pages has no node for it
 * either. */
static void zero_page_has_no_node(void)
{
	size_t len = 64 * KiB;
	char *p = map_aligned(len, HUGE2M, PROT_READ, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE");
	volatile char sink = 0;
	for (size_t i = 0; i < len; i += PAGE)
		sink += p[i];
	(void)sink;
	if (kernel_node(p) >= 0)
		skip("this kernel gives the zero page a node (%d)", kernel_node(p));
	/* Before PAGEMAP_SCAN the backing scan cannot tell the zero page from
	 * memory of its own, and with one node nothing else is asked. */
	const char *forced = getenv("PHYR_FORCE_FALLBACK");
	if (nnodes == 1 && (!kernel_at_least(6, 7) || (forced && strstr(forced, "scan"))) &&
	    !(forced && strstr(forced, "node-query")))
		skip("one node, and no PAGEMAP_SCAN on this path: the zero page is reported as the node's");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, 0, &r), 0);
	struct phyr_seg s[4];
	int got[4] = {7, 7, 7, 7};
	int n = check_nodes_against_kernel(r, s, got, 4);
	for (int i = 0; i < n; i++)
		CHECK(got[i] == -1, "segment %d of the zero page has node %d", i, got[i]);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

/* A seccomp filter denies move_pages (EPERM, or ENOSYS as some profiles
 * answer): phyr_pin still pins, its segments' nodes unknown (-1), and
 * phyr_pin_node fails with the filter's answer as it is, naming move_pages,
 * pinning nothing and leaving errno alone. */
static void move_pages_denied(void *arg)
{
	int err = (int)(intptr_t)arg;
	const char *forced = getenv("PHYR_FORCE_FALLBACK");
	if (nnodes < 2 && !(forced && strstr(forced, "node-query")))
		skip("one node: libphyr asks the kernel nothing (run with PHYR_FORCE_FALLBACK=node-query, or on two nodes)");
	size_t len = 4 * MiB;
	char *p = thp_on(len, nodes[0], 12);
	int nrs[] = { SYS_move_pages };
	deny_syscalls(nrs, 1, err);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, 0, &r), 0);
	int got[8];
	int n = phyr_seg_nodes(r, got, 8);
	CHECK(n >= 1 && n <= 8, "phyr_seg_nodes returned %d", n);
	for (int i = 0; i < n; i++)
		CHECK(got[i] == -1, "segment %d: node %d, where the kernel would not say", i, got[i]);
	CHECK_RC(phyr_unpin(r), 0);
	phyr_t *out = (phyr_t *)0x1;
	errno = 4242;
	CHECK_RC(phyr_pin_node(p, len, 0, nodes[nnodes - 1], &out), -err);
	CHECK(errno == 4242, "errno changed to %d", errno);
	CHECK(out == (phyr_t *)0x1, "a refused pin wrote *out");
	CHECK(strstr(phyr_last_error(), "move_pages"), "message: %s", phyr_last_error());
	CHECK_NOTHING_LOCKED(p, len);
	check_filled(p, len, 12);
	munmap(p, len);
}

static void seg_nodes_arguments(void)
{
	char *p = base_alloc(8 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 8 * PAGE, PHYR_PIN_WRITE, &r), 0);
	int got[2] = {42, 42};
	errno = 1234;
	CHECK_RC(phyr_seg_nodes(r, NULL, 0), 1);
	CHECK_RC(phyr_seg_nodes(r, got, 0), 1);
	CHECK(got[0] == 42, "nr 0 wrote");
	CHECK_RC(phyr_seg_nodes(r, got, 1), 1);
	CHECK(got[0] == nodes[0] || nnodes > 1, "node %d", got[0]);
	CHECK(got[1] == 42, "wrote past nr");
	CHECK_RC(phyr_seg_nodes(r, NULL, 2), -EINVAL);
	CHECK(strstr(phyr_last_error(), "phyr_seg_nodes") != NULL, "message: %s", phyr_last_error());
	CHECK_RC(phyr_seg_nodes(NULL, got, 2), -EINVAL);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_seg_nodes(r, got, 2), -EINVAL); /* dead */
	CHECK(errno == 1234, "errno changed to %d", errno);
	munmap(p, 8 * PAGE);
}

/* ------------------------------------------------------------ placement */

static void pin_node_refusals(void)
{
	char *p = base_alloc(16 * PAGE);
	memset(p, 1, 16 * PAGE);
	phyr_t *r = (phyr_t *)(uintptr_t)0x1234;
	uint64_t locked = vmlck_bytes();
	errno = 4321;
	int absent = nodes[nnodes - 1] + 1;
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 0, absent, &r), -EINVAL);
	CHECK(strstr(phyr_last_error(), "phyr_pin_node") && strstr(phyr_last_error(), "does not exist"),
	      "message: %s", phyr_last_error());
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 0, 1 << 20, &r), -EINVAL);
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 0, -2, &r), -EINVAL);
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 0, INT32_MIN, &r), -EINVAL);
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 1u << 30, nodes[0], &r), -EINVAL);
	CHECK_RC(phyr_pin_node(p, 0, 0, nodes[0], &r), -EINVAL);
	CHECK_RC(phyr_pin_node(p, 16 * PAGE, 0, nodes[0], NULL), -EINVAL);
	CHECK_RC(phyr_pin_node(NULL, 16 * PAGE, 0, nodes[0], &r), -EFAULT);
	CHECK(r == (phyr_t *)(uintptr_t)0x1234, "*out changed by a refusal");
	CHECK(vmlck_bytes() == locked, "a refused pin locked memory");
	CHECK(errno == 4321, "errno changed to %d", errno);
	munmap(p, 16 * PAGE);
}

/* On the node the memory is on already: nothing moves, the pin is
 * phyr_pin's; PHYR_NODE_LOCAL likewise on one node. */
static void pin_node_where_it_is(void)
{
	size_t len = 8 * MiB;
	char *p = thp_on(len, nodes[0], 2);
	uint64_t huge = huge_bytes_in(p, len);
	phyr_t *r;
	errno = 99;
	CHECK_RC(phyr_pin_node(p, len, PHYR_PIN_WRITE, nodes[0], &r), 0);
	CHECK(errno == 99, "errno changed");
	CHECK_LOCKED_EXACTLY(p, len, U(p), U(p) + len);
	struct phyr_seg s[64];
	int got[64];
	int n = check_nodes_against_kernel(r, s, got, 64);
	for (int i = 0; i < n; i++)
		CHECK(got[i] == nodes[0], "segment %d on node %d", i, got[i]);
	CHECK(huge_bytes_in(p, len) == huge, "huge bytes %" PRIu64 " -> %" PRIu64, huge, huge_bytes_in(p, len));
	CHECK_RC(phyr_unpin(r), 0);
	if (nnodes == 1) {
		CHECK_RC(phyr_pin_node(p, len, 0, PHYR_NODE_LOCAL, &r), 0);
		CHECK_RC(phyr_seg_nodes(r, got, 64), n);
		CHECK(got[0] == nodes[0], "PHYR_NODE_LOCAL: node %d", got[0]);
		CHECK_RC(phyr_unpin(r), 0);
	}
	check_filled(p, len, 2);
	CHECK_NOTHING_LOCKED(p, len);
	munmap(p, len);
}

/* 32 MiB of THP on the first node to the second: every page there, still
 * huge, one VMA as before (no mbind), the data intact. */
static void thp_moves_whole(void)
{
	need_two_nodes();
	size_t len = 32 * MiB;
	char *p = thp_on(len, nodes[0], 3);
	check_pages_on(p, p + len, nodes[0], "before");
	int vmas = vmas_in(p, len);
	phyr_t *r;
	CHECK_RC(phyr_pin_node(p, len, PHYR_PIN_WRITE, nodes[1], &r), 0);
	check_pages_on(p, p + len, nodes[1], "after");
	CHECK(huge_bytes_in(p, len) == len, "huge pages did not stay huge: %" PRIu64 " of %zu bytes",
	      huge_bytes_in(p, len), len);
	CHECK(vmas_in(p, len) == vmas, "the move split the mapping: %d VMAs, were %d", vmas_in(p, len), vmas);
	CHECK_LOCKED_EXACTLY(p, len, U(p), U(p) + len);
	struct phyr_seg s[64];
	int got[64];
	int n = check_nodes_against_kernel(r, s, got, 64);
	CHECK(n == 1 && got[0] == nodes[1] && s[0].page_shift == 21, "%d segments, node %d, shift %u", n, got[0],
	      s[0].page_shift);
	check_filled(p, len, 3);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

/* 4 KiB pages, a span that starts and ends inside pages: exactly the pages
 * the span touches move, their neighbours stay. */
static void base_pages_of_an_unaligned_span(void)
{
	need_two_nodes();
	size_t len = 64 * PAGE;
	char *p = base_on(len, nodes[0], 4);
	phyr_t *r;
	char *lo = p + 5 * PAGE + 100, *hi = p + 40 * PAGE - 300;
	CHECK_RC(phyr_pin_node(lo, (size_t)(hi - lo), 0, nodes[1], &r), 0);
	check_pages_on(p, p + 5 * PAGE, nodes[0], "below the span");
	check_pages_on(lo, hi, nodes[1], "the span");
	check_pages_on(p + 40 * PAGE, p + len, nodes[0], "above the span");
	struct phyr_seg s[64];
	int got[64];
	CHECK(check_nodes_against_kernel(r, s, got, 64) == 1 && got[0] == nodes[1], "segments");
	CHECK_LOCKED_EXACTLY(p, len, U(p) + 5 * PAGE, U(p) + 40 * PAGE);
	check_filled(p, len, 4);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

/* A THP mapped by 4 KiB entries (mprotect of one page splits the PMD, not
 * the folio): libphyr sees 4 KiB pages and names each; the kernel moves the
 * folio at the first and calls the rest busy.  Moved, not refused. */
static void pte_mapped_thp_moves(void)
{
	need_two_nodes();
	size_t len = 4 * MiB;
	char *p = thp_on(len, nodes[0], 10);
	CHECK(mprotect(p + 5 * PAGE, PAGE, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	CHECK(huge_bytes_in(p, len) == 2 * MiB, "the first huge page is still PMD-mapped");
	phyr_t *r;
	CHECK_RC(phyr_pin_node(p, len, 0, nodes[1], &r), 0);
	check_pages_on(p, p + len, nodes[1], "after");
	struct phyr_seg s[64];
	int got[64];
	check_nodes_against_kernel(r, s, got, 64);
	check_filled(p, len, 10);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

/* One THP-enabled mapping, a huge page then 512 pages of 4 KiB (faulted
 * while THP was off for the process).  Where the scan only guesses huge
 * pages (before PAGEMAP_SCAN, without CAP_SYS_ADMIN) every 4 KiB page is
 * still asked about and moved. */
static void thp_and_4k_in_one_mapping(void)
{
	need_two_nodes();
	size_t len = 4 * MiB;
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE");
	fill_part(p, 0, 2 * MiB, nodes[0], 11);
	CHECK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "PR_SET_THP_DISABLE");
	fill_part(p, 2 * MiB, 2 * MiB + 37 * PAGE, nodes[1], 11);
	fill_part(p, 2 * MiB + 37 * PAGE, len, nodes[0], 11);
	CHECK(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) == 0, "PR_SET_THP_DISABLE off");
	if (huge_bytes_in(p, len) != 2 * MiB)
		skip("the first 2 MiB did not come as THP (or the rest did)");
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, 0, &r), 0);
	struct phyr_seg s[64];
	int got[64];
	check_nodes_against_kernel(r, s, got, 64);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_pin_node(p, len, 0, nodes[1], &r), 0);
	check_pages_on(p, p + len, nodes[1], "after");
	check_nodes_against_kernel(r, s, got, 64);
	check_filled(p, len, 11);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, len);
}

static long node_pool(int node, const char *size, const char *what)
{
	char path[160];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/hugepages/hugepages-%s/%s", node, size, what);
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static long node_hugetlb(int node, const char *what)
{
	return node_pool(node, "2048kB", what);
}

static void set_node_pool(int node, const char *size, long pages)
{
	char path[160];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/hugepages/hugepages-%s/nr_hugepages", node, size);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL, "%s: %s", path, strerror(errno));
	fprintf(f, "%ld\n", pages);
	CHECK(fclose(f) == 0, "%s: %s", path, strerror(errno));
}

/* hugetlb pages move into the target node's pool, whole. */
static void hugetlb_from_the_nodes_pool(void)
{
	need_two_nodes();
	size_t len = 8 * MiB;
	long free0 = node_hugetlb(nodes[0], "free_hugepages"), free1 = node_hugetlb(nodes[1], "free_hugepages");
	if (free0 < 4 || free1 < 4)
		skip("hugetlb pools: %ld free on node %d, %ld on node %d (4 each needed)", free0, nodes[0], free1, nodes[1]);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	CHECK(p != MAP_FAILED, "hugetlb mmap: %s", strerror(errno));
	fill_on(p, len, nodes[0], 5);
	check_pages_on(p, p + len, nodes[0], "before");
	phyr_t *r;
	/* A span that starts and ends inside huge pages: pages 1 to 3 move
	 * whole (named by their heads: 6.1 refuses a tail page), page 0 stays. */
	CHECK_RC(phyr_pin_node(p + 2 * MiB + 100, len - 2 * MiB - 200, 0, nodes[1], &r), 0);
	check_pages_on(p + 2 * MiB, p + len, nodes[1], "after");
	check_pages_on(p, p + 2 * MiB, nodes[0], "the huge page before the span");
	CHECK(node_hugetlb(nodes[1], "free_hugepages") == free1 - 3, "node %d's pool: %ld free, was %ld", nodes[1],
	      node_hugetlb(nodes[1], "free_hugepages"), free1);
	struct phyr_seg s[8];
	int got[8];
	int n = check_nodes_against_kernel(r, s, got, 8);
	CHECK(n == 1 && got[0] == nodes[1] && (s[0].flags & PHYR_SEG_HUGETLB), "%d segments, node %d, flags %#x", n,
	      got[0], s[0].flags);
	check_filled(p, len, 5);
	CHECK_RC(phyr_unpin(r), 0);

	check_filled(p, len, 5);
	munmap(p, len);
}

/* A node with no room: a 1 GiB hugetlb page (which, unlike a 2 MiB one, the
 * kernel never makes a temporary page for) to a node whose 1 GiB pool is
 * empty for the moment.  -ENOMEM, nothing pinned, the page where it was. */
static void no_room_on_the_node(void)
{
	need_two_nodes();
	if (getuid() != 0)
		skip("emptying a node's hugetlb pool needs root");
	int from = -1, to = -1;
	for (int i = 0; i < nnodes && from < 0; i++)
		if (node_pool(nodes[i], "1048576kB", "free_hugepages") > 0)
			from = nodes[i];
	if (from < 0)
		skip("no free 1 GiB hugetlb page on any node");
	to = from == nodes[0] ? nodes[1] : nodes[0];
	size_t len = 1 * GiB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT),
		       -1, 0);
	CHECK(p != MAP_FAILED, "1 GiB hugetlb mmap: %s", strerror(errno));
	fault_on(from);
	for (size_t i = 0; i < len; i += 64 * PAGE)
		*(uint64_t *)(p + i) = i;
	fault_on(-1);
	CHECK(kernel_node(p) == from, "the 1 GiB page is on node %d, not %d", kernel_node(p), from);
	long total = node_pool(to, "1048576kB", "nr_hugepages");
	set_node_pool(to, "1048576kB", total - node_pool(to, "1048576kB", "free_hugepages"));
	uint64_t locked = vmlck_bytes();
	phyr_t *r = NULL;
	errno = 77;
	int rc = phyr_pin_node(p, len, 0, to, &r);
	char msg[512];
	snprintf(msg, sizeof msg, "%s", phyr_last_error());
	int e = errno;
	set_node_pool(to, "1048576kB", total);
	CHECK(rc == -ENOMEM, "pin into an empty pool: %d (%s)", rc, msg);
	CHECK(strstr(msg, "no room") != NULL, "message: %s", msg);
	CHECK(r == NULL && vmlck_bytes() == locked && e == 77, "a refused pin left something");
	CHECK(kernel_node(p) == from, "the page moved to node %d", kernel_node(p));
	for (size_t i = 0; i < len; i += 64 * PAGE)
		CHECK(*(uint64_t *)(p + i) == i, "data at +%#zx", i);
	munmap(p, len);
}

/* PHYR_PIN_LONGTERM: placed, then long-term pinned there (VmPin), and the
 * registration does I/O into it. */
static void longterm_on_the_node(void)
{
	need_two_nodes();
	struct io_uring ring;
	ring_or_skip(&ring, 8);
	size_t len = 8 * MiB;
	char *p = thp_on(len, nodes[0], 6);
	uint64_t pinned = vmpin_bytes();
	phyr_t *r;
	CHECK_RC(phyr_pin_node(p, len, PHYR_PIN_LONGTERM, nodes[1], &r), 0);
	check_pages_on(p, p + len, nodes[1], "after");
	CHECK(vmpin_reaches(pinned + len) >= pinned + len, "VmPin %" PRIu64 ", wanted %" PRIu64, vmpin_bytes(),
	      pinned + len);
	check_filled(p, len, 6);
	struct phyr_seg s[8];
	int got[8];
	check_nodes_against_kernel(r, s, got, 8);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	read_checked(&ring, reg, p, len, 66, "long-term range on its node");
	check_pages_on(p, p + len, nodes[1], "after the I/O");
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&ring);
	munmap(p, len);
}

/* PHYR_NODE_LOCAL: the node of the CPU the thread runs on, each in turn. */
static void local_node_under_affinity(void)
{
	need_two_nodes();
	cpu_set_t old;
	CHECK(sched_getaffinity(0, sizeof old, &old) == 0, "sched_getaffinity");
	int tried = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE && tried < 2; cpu++) {
		if (!CPU_ISSET(cpu, &old))
			continue;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity(%d)", cpu);
		unsigned c = 0, node = 0;
		CHECK(syscall(SYS_getcpu, &c, &node, NULL) == 0 && (int)c == cpu, "getcpu");
		int other = nodes[0] == (int)node ? nodes[1] : nodes[0];
		size_t len = 4 * MiB;
		char *p = thp_on(len, other, 7);
		phyr_t *r;
		CHECK_RC(phyr_pin_node(p, len, 0, PHYR_NODE_LOCAL, &r), 0);
		check_pages_on(p, p + len, (int)node, "PHYR_NODE_LOCAL");
		int got[8];
		CHECK(phyr_seg_nodes(r, got, 8) >= 1 && got[0] == (int)node, "node %d", got[0]);
		check_filled(p, len, 7);
		CHECK_RC(phyr_unpin(r), 0);
		munmap(p, len);
		tried++;
	}
	CHECK(sched_setaffinity(0, sizeof old, &old) == 0, "restore affinity");
	CHECK(tried == 2, "ran on %d CPUs", tried);
}

/* A page the program itself registered with io_uring (long-term pinned by
 * the kernel) cannot move: -EBUSY naming the page, nothing pinned. */
static void pinned_page_refused(void)
{
	need_two_nodes();
	struct io_uring ring;
	ring_or_skip(&ring, 8);
	size_t len = 1 * MiB;
	char *p = base_on(len, nodes[0], 8);
	struct iovec iov = { p + 64 * PAGE, PAGE };
	CHECK_RC(io_uring_register_buffers(&ring, &iov, 1), 0);
	uint64_t locked = vmlck_bytes(), pinned = vmpin_bytes();
	phyr_t *r = NULL;
	errno = 55;
	int rc = phyr_pin_node(p, len, 0, nodes[1], &r);
	CHECK(rc == -EBUSY, "phyr_pin_node over a registered page: %d", rc);
	char want[32];
	snprintf(want, sizeof want, "%p", (void *)(p + 64 * PAGE));
	CHECK(strstr(phyr_last_error(), want) != NULL, "the message does not name %s: %s", want, phyr_last_error());
	CHECK(errno == 55 && r == NULL, "errno %d, out %p", errno, (void *)r);
	CHECK(vmlck_bytes() == locked && vmpin_bytes() == pinned, "a refused pin left memory locked or pinned");
	CHECK_NOTHING_LOCKED(p, len);
	CHECK(kernel_node(p + 64 * PAGE) == nodes[0], "the registered page moved");
	check_filled(p, len, 8);
	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	munmap(p, len);
}

/* ------------------------------------------------------------ the tool */

/* The bytes numa_maps gives node `node` in the VMA starting at `start`. */
static uint64_t numa_maps_bytes(uint64_t start, int node)
{
	FILE *f = fopen("/proc/self/numa_maps", "r");
	CHECK(f != NULL, "numa_maps: %s", strerror(errno));
	char line[4096], key[16];
	uint64_t bytes = 0;
	snprintf(key, sizeof key, " N%d=", node);
	while (fgets(line, sizeof line, f)) {
		if (strtoull(line, NULL, 16) != start)
			continue;
		char *n = strstr(line, key), *k = strstr(line, "kernelpagesize_kB=");
		if (n && k)
			bytes = strtoull(n + strlen(key), NULL, 10) * strtoull(k + 18, NULL, 10) * 1024;
	}
	fclose(f);
	return bytes;
}

/* The value of "key":<number> in the first JSON object of text that holds
 * "start":<start>, and the text from there. */
static const char *mapping_json(const char *text, uint64_t start)
{
	char want[64];
	snprintf(want, sizeof want, "{\"start\":%" PRIu64 ",", start);
	const char *m = strstr(text, want);
	CHECK(m != NULL, "no mapping starting at %#" PRIx64 " in: %.400s", start, text);
	return m;
}

/* `"nodes":{"0":N,...}` of the object at obj: node's bytes (0: absent). */
static uint64_t json_node_bytes(const char *obj, int node)
{
	const char *n = strstr(obj, "\"nodes\":{");
	CHECK(n != NULL, "no nodes in %.300s", obj);
	const char *end = strchr(n, '}');
	char key[24];
	snprintf(key, sizeof key, "\"%d\":", node);
	const char *k = strstr(n, key);
	return k && k < end ? strtoull(k + strlen(key), NULL, 10) : 0;
}

/* phyr-inspect's bytes per node of a mapping half on each node, against
 * numa_maps and against move_pages per page; its registered buffers' nodes,
 * and the process's totals. */
static void tool_bytes_per_node(void)
{
	const char *stage = getenv("STAGE");
	char tool[512];
	snprintf(tool, sizeof tool, "%s/bin/phyr-inspect", stage ? stage : "");
	if (!stage || access(tool, X_OK) != 0)
		skip("no phyr-inspect under $STAGE (run through tests/run.sh)");
	struct io_uring ring;
	ring_or_skip(&ring, 4);
	int two = nnodes >= 2;
	size_t len = 16 * MiB;
	char *p = map_aligned(len, HUGE2M, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	CHECK(madvise(p, len, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE");
	fill_part(p, 0, len / 2, nodes[0], 9);
	fill_part(p, len / 2, len, nodes[two], 9);
	struct iovec iov[2] = { { p, len / 2 }, { p + len / 2, len / 2 } };
	CHECK_RC(io_uring_register_buffers(&ring, iov, 2), 0);
	/* The kernel's two answers, page by page and per VMA. */
	uint64_t by_pages[2] = {0, 0};
	for (uint64_t a = 0; a < len; a += PAGE) {
		int k = kernel_node(p + a);
		CHECK(k == nodes[0] || k == nodes[two], "page +%#" PRIx64 " on node %d", a, k);
		by_pages[k == nodes[two] && two]++;
	}
	char cmd[700];
	snprintf(cmd, sizeof cmd, "%s --json --io-uring %d %p+%zu", tool, (int)getpid(), (void *)p, len);
	FILE *f = popen(cmd, "r");
	CHECK(f != NULL, "popen");
	static char out[1 << 20];
	size_t got = fread(out, 1, sizeof out - 1, f);
	out[got] = 0;
	CHECK(pclose(f) == 0, "%s failed: %.300s", cmd, out);
	const char *m = mapping_json(out, U(p));
	for (int i = 0; i <= two; i++) {
		uint64_t tool_bytes = json_node_bytes(m, nodes[i]);
		uint64_t kernel_bytes = by_pages[i] * PAGE;
		CHECK(tool_bytes == kernel_bytes, "node %d: phyr-inspect says %" PRIu64 " bytes, move_pages per page %" PRIu64,
		      nodes[i], tool_bytes, kernel_bytes);
		CHECK(numa_maps_bytes(U(p), nodes[i]) == tool_bytes, "node %d: numa_maps says %" PRIu64 ", the tool %" PRIu64,
		      nodes[i], numa_maps_bytes(U(p), nodes[i]), tool_bytes);
		CHECK(json_node_bytes(out, nodes[i]) >= tool_bytes, "the process total for node %d", nodes[i]);
	}
	/* The buffers: the first on the first node, the second on the other. */
	char want[2][96];
	snprintf(want[0], sizeof want[0], "\"addr\":%" PRIu64 ",\"len\":%zu,", U(p), len / 2);
	snprintf(want[1], sizeof want[1], "\"addr\":%" PRIu64 ",\"len\":%zu,", U(p) + len / 2, len / 2);
	for (int b = 0; b < 2; b++) {
		const char *o = strstr(out, want[b]);
		CHECK(o != NULL, "buffer %d not listed: %.600s", b, out);
		const char *n = strstr(o, "\"nodes\":[");
		CHECK(n != NULL && atoi(n + 9) == nodes[b && two] && n[9 + (nodes[b && two] > 9)] != ',' &&
		      n[10 + (nodes[b && two] > 9)] == ']', "buffer %d: %.40s, wanted [%d]", b, n ? n : "(none)",
		      nodes[b && two]);
	}
	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	munmap(p, len);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	nnodes = nodes_with_memory(nodes, 64);
	CHECK(nnodes >= 1, "no node with memory");
	RUN(reporting_without_phys);
	RUN(reporting_with_phys);
	RUN(zero_page_has_no_node);
	RUN(seg_nodes_arguments);
	RUN(pin_node_refusals);
	RUN_CHILD(move_pages_denied, (void *)(intptr_t)EPERM);
	RUN_CHILD(move_pages_denied, (void *)(intptr_t)ENOSYS);
	RUN(pin_node_where_it_is);
	RUN(thp_moves_whole);
	RUN(base_pages_of_an_unaligned_span);
	RUN(pte_mapped_thp_moves);
	RUN(thp_and_4k_in_one_mapping);
	RUN(hugetlb_from_the_nodes_pool);
	RUN(no_room_on_the_node);
	RUN(longterm_on_the_node);
	RUN(local_node_under_affinity);
	RUN(pinned_page_refused);
	RUN(tool_bytes_per_node);
	return t_done();
}

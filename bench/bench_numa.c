/* SPDX-License-Identifier: MIT */
/*
 * bench_numa - where memory is, and moving it, against what programs do
 * today: a move_pages(2) call about every 4 KiB page (Mooncake's way).
 *
 * The library is made to ask the kernel each folio's node even on a machine
 * with one node (PHYR_FORCE_FALLBACK=node-query, set before its first
 * call), so its rows cost what they cost on a machine with several.  The
 * placement row needs two nodes: make bench runs it in a VM with two.
 */
#include "bench.h"

#include <sys/syscall.h>

static void row(const char *what, double ours, const char *base_name, double base, const char *target)
{
	table_row(what, ours, base_name, base, target, 1);
}

/* move_pages of `n` pages from p, `step` apart: to `node`, or (node < 0)
 * only asking where they are. */
static void move_pages_every(char *p, uint64_t n, uint64_t step, int node)
{
	static void *pages[1 << 18];
	static int status[1 << 18], nodes[1 << 18];
	for (uint64_t i = 0; i < n; i++) {
		pages[i] = p + i * step;
		nodes[i] = node;
	}
	if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, node < 0 ? NULL : nodes, status,
		    node < 0 ? 0 : 2 /* MPOL_MF_MOVE */) < 0)
		die("move_pages", errno);
}

/* ---- The nodes of a pinned 1 GiB THP range. */
static void seg_nodes(void)
{
	char *p = alloc(GiB, 1);
	static int nodes[1024];
	double ours[7], pin[7], base[3];
	for (int i = 0; i < 7; i++) {
		phyr_t *r;
		double t = now();
		int rc = phyr_pin(p, GiB, 0, &r);
		if (rc)
			die("phyr_pin", rc);
		pin[i] = now() - t;
		t = now();
		int n = phyr_seg_nodes(r, nodes, 1024);
		ours[i] = now() - t;
		if (n < 1)
			die("phyr_seg_nodes", n);
		phyr_unpin(r);
	}
	mlock(p, GiB);
	for (int i = 0; i < 3; i++) {
		double t = now();
		move_pages_every(p, GiB / PAGE, PAGE, -1);
		base[i] = now() - t;
	}
	double per_folio[7];
	for (int i = 0; i < 7; i++) {
		double t = now();
		move_pages_every(p, GiB / HUGE2M, HUGE2M, -1);
		per_folio[i] = now() - t;
	}
	munlock(p, GiB);
	double b = median(base, 3);
	row("phyr_seg_nodes, 1 GiB THP pinned", median(ours, 7), "move_pages query, every 4 KiB page", b,
	    ">= 50x faster");
	row("  its questions at pin time: one per folio", median(per_folio, 7), "  (262,144 questions)", b, "");
	row("  phyr_pin of it, the questions included", median(pin, 7), "  (the same)", b, "");
	munmap(p, GiB);
}

/* The first two nodes with memory (sysfs "0-1", "0,2", ...); 0 in both
 * where there is one. */
static int first_nodes(int *a, int *b)
{
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");
	int lo = 0, hi = 0, n = 0;
	char sep = 0;
	*a = *b = 0;
	if (!f)
		return 1;
	while (n < 2 && fscanf(f, "%d%c", &lo, &sep) >= 1) {
		hi = lo;
		if (sep == '-' && fscanf(f, "%d%c", &hi, &sep) < 1)
			break;
		for (int i = lo; i <= hi && n < 2; i++)
			*(n++ ? b : a) = i;
		if (sep != ',')
			break;
	}
	fclose(f);
	return n;
}

/* THP faulted in on `node` (the thread's policy, only while faulting). */
static char *thp_on(size_t len, int node)
{
	unsigned long mask = 1UL << node;
	if (syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &mask, 64UL) != 0)
		die("set_mempolicy", errno);
	char *p = alloc(len, 1);
	syscall(SYS_set_mempolicy, 0, NULL, 0UL);
	return p;
}

/* ---- 256 MiB of THP from node 0 to node 1 (two nodes only). */
static void pin_node(void)
{
	int from, to;
	if (first_nodes(&from, &to) < 2) {
		printf("| %-44s | one node here: make bench runs it in a VM with two |\n",
		       "phyr_pin_node, 256 MiB THP, node 0 -> 1");
		return;
	}
	size_t len = 256 * MiB;
	double ours[3], base[3];
	for (int i = 0; i < 3; i++) {
		char *p = thp_on(len, from);
		phyr_t *r;
		double t = now();
		int rc = phyr_pin_node(p, len, 0, to, &r);
		ours[i] = now() - t;
		if (rc)
			die("phyr_pin_node", rc);
		phyr_unpin(r);
		munmap(p, len);

		p = thp_on(len, from);
		t = now();
		move_pages_every(p, len / PAGE, PAGE, to);
		base[i] = now() - t;
		munmap(p, len);
	}
	row("phyr_pin_node, 256 MiB THP, node 0 -> 1", median(ours, 3), "move_pages to node 1, every 4 KiB", median(base, 3),
	    "reported");
	printf("| %-44s | %10.0f MiB/s (libphyr), %.0f MiB/s (move_pages per 4 KiB) |\n", "  moved per second",
	       256 / median(ours, 3), 256 / median(base, 3));
}

/* `bench_numa [ROW]`: every row, or only the one named (seg_nodes, pin_node). */
int main(int argc, char **argv)
{
	setenv("PHYR_FORCE_FALLBACK", "node-query", 1);
	static const struct { const char *name; void (*run)(void); } rows[] = {
		{ "seg_nodes", seg_nodes }, { "pin_node", pin_node },
	};
	table_header("NUMA ");
	for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (argc < 2 || strcmp(argv[1], rows[i].name) == 0)
			rows[i].run();
	return 0;
}

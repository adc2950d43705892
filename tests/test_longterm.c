/* SPDX-License-Identifier: MIT */
/*
 * PHYR_PIN_LONGTERM and PHYR_PIN_DONTFORK, seen from the kernel's side: the
 * buffers every io_uring of the process holds (/proc/self/fdinfo), VmPin,
 * smaps, PFNs from pagemap as root, and fixed I/O with the data checked.
 * libphyr's holder rings are io_urings the test did not make: the test
 * finds them by their fdinfo, as any observer would.
 */
#include "ring_io.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define MAX_HELD 256
#define MAX_RING_FDS 256
struct held { uint64_t lo, hi; int fd; };

struct held_query { uint64_t lo, hi; int fd, n; struct held *out; };

static void keep_held(uint64_t addr, uint64_t len, void *arg)
{
	struct held_query *q = arg;
	if (addr < q->hi && addr + len > q->lo) {
		CHECK(q->n < MAX_HELD, "too many held buffers");
		q->out[q->n++] = (struct held){ addr, addr + len, q->fd };
	}
}

/*
 * Every buffer held by an io_uring of this process other than `mine` (-1:
 * none excluded) that meets [lo, hi): libphyr's holder rings, as their
 * fdinfo lists them.  Returns the count, fills out[] sorted by address.
 */
static int held_buffers(uint64_t lo, uint64_t hi, int mine, struct held *out)
{
	struct held_query q = { lo, hi, -1, 0, out };
	int fds[MAX_RING_FDS], nf = io_uring_fds(fds, MAX_RING_FDS);
	for (int i = 0; i < nf; i++) {
		if (fds[i] == mine)
			continue;
		q.fd = fds[i];
		fdinfo_each_buf(fds[i], keep_held, &q);
	}
	int n = q.n;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j].lo < out[j - 1].lo; j--) {
			struct held t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* Whether the held buffers meeting [lo, hi) cover exactly [want_lo, want_hi). */
static void check_held_exactly(const char *what, uint64_t lo, uint64_t hi, uint64_t want_lo, uint64_t want_hi)
{
	struct held h[MAX_HELD];
	int n = held_buffers(lo, hi, -1, h);
	if (want_lo == want_hi) {
		CHECK(n == 0, "%s: %d buffers still held, first [%#" PRIx64 ", %#" PRIx64 ")", what, n, n ? h[0].lo : 0,
		      n ? h[0].hi : 0);
		return;
	}
	CHECK(n > 0, "%s: nothing held", what);
	uint64_t at = h[0].lo, end = h[0].hi;
	for (int i = 1; i < n; i++) {
		CHECK(h[i].lo <= end, "%s: a hole in what is held at %#" PRIx64, what, end);
		if (h[i].hi > end)
			end = h[i].hi;
	}
	CHECK(at == want_lo && end == want_hi, "%s: held [%#" PRIx64 ", %#" PRIx64 "), wanted [%#" PRIx64 ", %#" PRIx64 ")",
	      what, at, end, want_lo, want_hi);
}

/* Fixed write then fixed read through reg, data checked both ways. */
static void io_through(struct io_uring *ring, ring_reg_t *reg, char *p, size_t len, uint64_t seed)
{
	int in = pattern_file(len, seed);
	fixed_io(ring, reg, in, p, len, 0, 0, CHUNK);
	CHECK(check_pattern(p, len, 0, seed) < 0, "READ_FIXED data wrong at %ld", check_pattern(p, len, 0, seed));
	fill_pattern(p, len, 0, seed ^ 0xabcdef);
	fixed_io(ring, reg, in, p, len, 0, 1, CHUNK);
	char *back = malloc(len);
	CHECK(pread(in, back, len, 0) == (ssize_t)len, "pread");
	CHECK(check_pattern(back, len, 0, seed ^ 0xabcdef) < 0, "WRITE_FIXED data wrong");
	free(back);
	close(in);
}

/* The kernel clones into the middle of a table and keeps the rest (6.19,
 * 6.18.3+): libphyr clones long-term ranges into rings there. */
static int clones_into_tables(void)
{
	struct utsname u;
	int a = 0, b = 0, c = 0;
	const char *forced = getenv("PHYR_FORCE_FALLBACK");
	if (forced && strstr(forced, "clone"))
		return 0;
	uname(&u);
	sscanf(u.release, "%d.%d.%d", &a, &b, &c);
	return a * 1000 + b >= 6019 || (a == 6 && b == 18 && c >= 3);
}

/* ----------------------------------------------------------------- cases */

static void pin_thp_with_strays(void)
{
	size_t len = 16 * MiB;
	char *p = thp_alloc(len);
	stray_page(p, 5 * MiB + 3 * PAGE);
	stray_page(p, 11 * MiB);
	uint64_t pin0 = vmpin_reaches(0), lck0 = vmlck_bytes();
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 100, len - 200, PHYR_PIN_LONGTERM, &r), 0);
	/* The kernel holds it whole (in huge pages where huge), nothing mlocked. */
	CHECK(vmpin_bytes() - pin0 >= len - 2 * HUGE2M, "VmPin grew by %" PRIu64, vmpin_bytes() - pin0);
	CHECK(vmlck_bytes() == lck0, "a long-term pin mlocked %" PRIu64 " bytes", vmlck_bytes() - lck0);
	check_held_exactly("THP with strays", U(p), U(p) + len, U(p) + 100, U(p) + len - 100);
	struct phyr_seg s[8];
	int n = segs_of(r, s, 8);
	CHECK(n == 5 && s[0].page_shift == 21 && s[1].page_shift == 12 && s[2].page_shift == 21 &&
	      s[3].page_shift == 12 && s[4].page_shift == 21, "%d segments: shifts %u %u", n, s[0].page_shift,
	      n > 1 ? s[1].page_shift : 0);
	CHECK(huge_bytes_in(p, len) == len - 4 * MiB, "huge mappings split: %" PRIu64, huge_bytes_in(p, len));

	struct io_uring ring;
	ring_or_skip(&ring, QD);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	CHECK_RC(phyr_unpin(r), 0); /* the registration holds it */
	io_through(&ring, reg, p + PAGE, len - 2 * PAGE, 7);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	check_held_exactly("after unregistering", U(p), U(p) + len, 0, 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after the last release, was %" PRIu64, vmpin_bytes(), pin0);
	io_uring_queue_exit(&ring);
	munmap(p, len);
}

static void pin_base_pages(void)
{
	size_t len = 4 * MiB;
	char *p = base_alloc(len);
	uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going: this program pins nothing else */
	phyr_t *r;
	CHECK_RC(phyr_pin(p + 5, len - 5, PHYR_PIN_LONGTERM | PHYR_PIN_WRITE, &r), 0);
	CHECK(vmpin_bytes() - pin0 == len, "VmPin grew by %" PRIu64 ", wanted %zu", vmpin_bytes() - pin0, len);
	check_held_exactly("4 KiB pages", U(p), U(p) + len, U(p) + 5, U(p) + len);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after unpin", vmpin_bytes());
	check_held_exactly("4 KiB pages, unpinned", U(p), U(p) + len, 0, 0);
	munmap(p, len);
}

static void pin_hugetlb(unsigned shift)
{
	uint64_t page = UINT64_C(1) << shift;
	char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | ((int)shift << MAP_HUGE_SHIFT), -1, 0);
	if (p == MAP_FAILED)
		skip("no %" PRIu64 " KiB hugetlb page reserved (%s; make hugepages)", page / KiB, strerror(errno));
	uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going */
	phyr_t *r;
	int rc = phyr_pin(p, page, PHYR_PIN_LONGTERM, &r);
	if (rc == -ENOMEM && strstr(phyr_last_error(), "hugetlb")) {
		munmap(p, page);
		skip("%s", phyr_last_error());
	}
	CHECK_RC(rc, 0);
	struct phyr_seg s[2];
	CHECK(segs_of(r, s, 2) == 1 && s[0].page_shift == shift && (s[0].flags & PHYR_SEG_HUGETLB),
	      "hugetlb segment shift %u flags %#x", s[0].page_shift, s[0].flags);
	CHECK(vmpin_bytes() - pin0 == page, "VmPin grew by %" PRIu64, vmpin_bytes() - pin0);
	check_held_exactly("hugetlb", U(p), U(p) + page, U(p), U(p) + page);
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	io_through(&ring, reg, p, page < 8 * MiB ? page : 8 * MiB, shift);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	io_uring_queue_exit(&ring);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after unpin", vmpin_bytes());
	munmap(p, page);
}

static void pin_hugetlb_2_mib(void)
{
	pin_hugetlb(21);
}

static void pin_hugetlb_1_gib(void)
{
	pin_hugetlb(30);
}

/* As root: the addresses stay true through compaction and a fork whose
 * parent writes every page while the child lives. */
static void phys_stays_true(void)
{
	if (!has_cap(T_CAP_SYS_ADMIN))
		skip("physical addresses need CAP_SYS_ADMIN");
	size_t len = 8 * MiB;
	char *thp = thp_alloc(len);
	char *base = base_alloc(len);
	phyr_t *a, *b;
	CHECK_RC(phyr_pin(thp, len, PHYR_PIN_LONGTERM | PHYR_PIN_PHYS, &a), 0);
	CHECK_RC(phyr_pin(base, len, PHYR_PIN_LONGTERM | PHYR_PIN_PHYS, &b), 0);
	for (int round = 0; round < 3; round++) {
		if (round < 2) {
			FILE *f = fopen("/proc/sys/vm/compact_memory", "w");
			CHECK(f && fputs("1\n", f) >= 0, "compact_memory");
			fclose(f);
		} else {
			int go[2];
			CHECK(pipe(go) == 0, "pipe");
			fflush(NULL);
			pid_t pid = fork();
			CHECK(pid >= 0, "fork");
			if (pid == 0) {
				char c;
				close(go[1]);
				(void)!read(go[0], &c, 1);
				_exit(0);
			}
			memset(thp, 0x71, len);
			memset(base, 0x72, len);
			close(go[1]);
			waitpid(pid, NULL, 0);
			close(go[0]);
		}
		phyr_t *rs[2] = { a, b };
		for (int k = 0; k < 2; k++) {
			struct phyr_seg s[4096];
			int n = segs_of(rs[k], s, 4096);
			for (int i = 0; i < n; i++)
				for (uint64_t at = s[i].addr; at < s[i].addr + s[i].len; at += PAGE)
					CHECK(phys_of((void *)(uintptr_t)at) == s[i].phys + (at - s[i].addr),
					      "%s: %s moved page %#" PRIx64 ": pagemap %#" PRIx64 ", pinned at %#" PRIx64,
					      k ? "4 KiB" : "THP", round < 2 ? "compaction" : "the parent's write after fork",
					      at, phys_of((void *)(uintptr_t)at), s[i].phys + (at - s[i].addr));
		}
	}
	CHECK_RC(phyr_unpin(a), 0);
	CHECK_RC(phyr_unpin(b), 0);
	munmap(thp, len);
	munmap(base, len);
}

static void unmapped_stays_held(void)
{
	size_t len = 4 * MiB;
	char *p = thp_alloc(len);
	uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going */
	phyr_t *old, *fresh;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM, &old), 0);
	uint64_t held = vmpin_bytes() - pin0;
	CHECK(munmap(p, len) == 0, "munmap");
	CHECK(vmpin_bytes() - pin0 == held, "VmPin %" PRIu64 " after munmap, was %" PRIu64 " over the base",
	      vmpin_bytes() - pin0, held);
	check_held_exactly("unmapped under the pin", U(p), U(p) + len, U(p), U(p) + len);
	/* New memory at the same address: a new pin, not the old one. */
	char *q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(q == p, "mmap at the old address");
	memset(q, 3, len);
	CHECK_RC(phyr_pin(q, len, PHYR_PIN_LONGTERM, &fresh), 0);
	struct held h[MAX_HELD];
	CHECK(held_buffers(U(p), U(p) + len, -1, h) == 2, "the new pin is not a buffer of its own");
	CHECK(vmpin_bytes() - pin0 >= held + len - 2 * HUGE2M, "VmPin %" PRIu64 ": the new memory is not pinned",
	      vmpin_bytes() - pin0);
	CHECK_RC(phyr_unpin(old), 0);
	CHECK(held_buffers(U(p), U(p) + len, -1, h) == 1, "unpinning the old pin left %d buffers",
	      held_buffers(U(p), U(p) + len, -1, h));
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &fresh, 1, 0, &reg), 0);
	io_through(&ring, reg, q, len, 11);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	io_uring_queue_exit(&ring);
	CHECK_RC(phyr_unpin(fresh), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after both unpins", vmpin_bytes());
	munmap(q, len);
}

static void split_inside_a_folio(void)
{
	size_t len = 8 * MiB;
	char *p = thp_alloc(len);
	uint64_t cut = 3 * MiB + 100; /* inside the second 2 MiB folio */
	for (int order = 0; order < 2; order++) {
		phyr_t *head, *tail;
		CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM, &head), 0);
		CHECK_RC(phyr_split(head, cut, &tail), 0);
		check_held_exactly("both halves", U(p), U(p) + len, U(p), U(p) + len);
		void *a;
		size_t l;
		CHECK_RC(phyr_range(tail, &a, &l), 0);
		CHECK(a == p + cut && l == len - cut, "tail is [%p, +%zu)", a, l);
		if (order == 0) {
			CHECK_RC(phyr_unpin(head), 0);
			check_held_exactly("tail alone", U(p), U(p) + len, U(p) + 2 * MiB, U(p) + len);
			CHECK_RC(phyr_unpin(tail), 0);
		} else {
			CHECK_RC(phyr_unpin(tail), 0);
			check_held_exactly("head alone", U(p), U(p) + len, U(p), U(p) + 4 * MiB);
			CHECK_RC(phyr_unpin(head), 0);
		}
		check_held_exactly("both released", U(p), U(p) + len, 0, 0);
	}
	/* 4 KiB pages: the page holding the cut is pinned by both halves. */
	char *b = base_alloc(64 * PAGE);
	phyr_t *h, *t;
	CHECK_RC(phyr_pin(b, 64 * PAGE, PHYR_PIN_LONGTERM, &h), 0);
	CHECK_RC(phyr_split(h, 10 * PAGE + 7, &t), 0);
	CHECK_RC(phyr_unpin(h), 0);
	check_held_exactly("4 KiB tail", U(b), U(b) + 64 * PAGE, U(b) + 10 * PAGE, U(b) + 64 * PAGE);
	phyr_t *t2;
	CHECK_RC(phyr_split(t, 20 * PAGE - 7, &t2), 0); /* on a page boundary: nothing shared */
	CHECK_RC(phyr_unpin(t2), 0);
	check_held_exactly("4 KiB middle", U(b), U(b) + 64 * PAGE, U(b) + 10 * PAGE, U(b) + 30 * PAGE);
	CHECK_RC(phyr_unpin(t), 0);
	check_held_exactly("4 KiB released", U(b), U(b) + 64 * PAGE, 0, 0);
	munmap(b, 64 * PAGE);
	munmap(p, len);
}

/* A split of a PHYR_PIN_PHYS range whose memory was replaced under the pin
 * must not drop the pins on the pages a device was told about. */
static void split_refuses_replaced_memory(void)
{
	if (!has_cap(T_CAP_SYS_ADMIN))
		skip("physical addresses need CAP_SYS_ADMIN");
	size_t len = 64 * PAGE;
	char *p = base_alloc(len);
	uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going */
	phyr_t *r, *t;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM | PHYR_PIN_PHYS, &r), 0);
	CHECK(madvise(p + 20 * PAGE, PAGE, MADV_DONTNEED) == 0, "MADV_DONTNEED");
	p[20 * PAGE] = 1; /* a new page there; the pinned one is still held */
	CHECK_RC(phyr_split(r, 10 * PAGE + 5, &t), -EFAULT);
	CHECK(strstr(phyr_last_error(), "no longer the page pinned"), "message: %s", phyr_last_error());
	void *a;
	size_t l;
	CHECK_RC(phyr_range(r, &a, &l), 0);
	CHECK(a == p && l == len, "a refused split changed the range");
	check_held_exactly("after the refused split", U(p), U(p) + len, U(p), U(p) + len);
	CHECK(vmpin_reaches(pin0 + len) - pin0 == len, "VmPin grew by %" PRIu64 " after the refused split",
	      vmpin_bytes() - pin0);
	CHECK_RC(phyr_unpin(r), 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after the unpin", vmpin_bytes());
	munmap(p, len);
}

static void child_counts_rings(void *arg)
{
	(void)arg;
	CHECK(io_uring_fd_count() == 0, "the child inherited %d of the parent's holder rings", io_uring_fd_count());
}

/*
 * A daemon closes every descriptor, libphyr's holder ring among them, and
 * libphyr's next duplicate of a caller's ring takes the holder's number (the
 * lowest free one where libphyr keeps its descriptors).  Releasing the old
 * long-term range must not write to that number: the caller's slots stay
 * full, and fixed reads through them stay right.
 */
static void holder_number_taken_by_another_ring(void)
{
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	char *held = base_alloc(16 * PAGE), *mine = base_alloc(16 * PAGE);
	int before[MAX_RING_FDS], after[MAX_RING_FDS];
	int nb = io_uring_fds(before, MAX_RING_FDS);
	phyr_t *lt, *r;
	CHECK_RC(phyr_pin(held, 16 * PAGE, PHYR_PIN_LONGTERM, &lt), 0);
	int na = io_uring_fds(after, MAX_RING_FDS), holder = -1;
	for (int i = 0; i < na; i++) {
		int old = 0;
		for (int j = 0; j < nb; j++)
			old |= before[j] == after[i];
		if (!old)
			holder = after[i];
	}
	if (holder < 0) /* the pin went into a holder ring an earlier case made */
		holder = after[na - 1];
	CHECK(holder > ring.ring_fd, "no holder ring of libphyr's found (%d)", holder);
	CHECK(close(holder) == 0, "close the holder: %s", strerror(errno)); /* behind libphyr's back */
	CHECK_RC(phyr_pin(mine, 16 * PAGE, PHYR_PIN_WRITE, &r), 0);
	ring_reg_t *reg;
	CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
	int dups[MAX_RING_FDS], nd = io_uring_fds(dups, MAX_RING_FDS), taken = 0;
	for (int i = 0; i < nd; i++)
		taken |= dups[i] == holder;
	if (!taken)
		skip_part("libphyr's duplicate of the ring got another number than the closed holder's: the reuse "
			  "is not exercised");
	CHECK_RC(phyr_unpin(lt), 0); /* the holder ring is gone: nothing to empty */
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "releasing the long-term range emptied the caller's slot: "
	      "%d buffers left", fdinfo_bufs(ring.ring_fd, NULL));
	io_through(&ring, reg, mine, 16 * PAGE, 77);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(r), 0);
	io_uring_queue_exit(&ring);
	munmap(held, 16 * PAGE);
	munmap(mine, 16 * PAGE);
}

/*
 * A daemon closes libphyr's holder ring while a long-term range lives (the
 * kernel drops that ring's pins with it).  Registering the range then
 * cannot clone it from there: it is registered directly, and reads through
 * it are right.  Cloning still works for the next long-term range.
 */
static void registered_after_its_holder_closed(void)
{
	struct io_uring ring;
	ring_or_skip(&ring, QD);
	size_t len = 16 * PAGE;
	char *p = base_alloc(len), *q = base_alloc(len);
	phyr_t *lt, *next;
	uint64_t pin0 = vmpin_reaches(0);
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM, &lt), 0);
	struct held h[MAX_HELD];
	CHECK(held_buffers(U(p), U(p) + len, ring.ring_fd, h) == 1, "the long-term range is not one held buffer");
	CHECK(close(h[0].fd) == 0, "close the holder: %s", strerror(errno)); /* behind libphyr's back */
	/* The kernel tears the ring down later: wait for its pins to go, or
	 * they would hide a registration that pins again. */
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after closing the holder ring, was %" PRIu64,
	      vmpin_bytes(), pin0);
	ring_reg_t *reg, *reg_next;
	CHECK_RC(ring_register_ranges(&ring, &lt, 1, 0, &reg), 0);
	CHECK(fdinfo_bufs(ring.ring_fd, NULL) == 1, "the ring lists %d buffers", fdinfo_bufs(ring.ring_fd, NULL));
	io_through(&ring, reg, p, len, 31);
	CHECK_RC(phyr_pin(q, len, PHYR_PIN_LONGTERM, &next), 0);
	uint64_t pinned = vmpin_bytes();
	CHECK_RC(ring_register_ranges(&ring, &next, 1, 0, &reg_next), 0);
	if (clones_into_tables())
		CHECK(vmpin_reaches(pinned) == pinned, "VmPin grew from %" PRIu64 " to %" PRIu64 " registering the next "
		      "long-term range: the closed holder ring turned cloning off", pinned, vmpin_bytes());
	else
		skip_part("cloning the next range: this kernel (or PHYR_FORCE_FALLBACK=clone) cannot clone into a "
			  "table's slots");
	io_through(&ring, reg_next, q, len, 32);
	CHECK_RC(ring_unregister_ranges(reg_next), 0);
	CHECK_RC(ring_unregister_ranges(reg), 0);
	CHECK_RC(phyr_unpin(next), 0);
	CHECK_RC(phyr_unpin(lt), 0);
	io_uring_queue_exit(&ring);
	munmap(p, len);
	munmap(q, len);
}

/* A child closes its copies of the holder rings at fork, so the parent's
 * pins never outlive the parent in a child that never calls libphyr. */
static void child_closes_holders(void)
{
	char *p = base_alloc(16 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 16 * PAGE, PHYR_PIN_LONGTERM, &r), 0);
	CHECK(io_uring_fd_count() > 0, "no holder ring in the parent");
	CHECK_CHILD(child_counts_rings, NULL);
	CHECK_RC(phyr_unpin(r), 0);
	munmap(p, 16 * PAGE);
}

static void registered_in_four_rings(void)
{
	size_t len = 16 * MiB;
	char *p = thp_alloc(len);
	stray_page(p, 9 * MiB);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM, &r), 0);
	uint64_t pinned = vmpin_bytes();
	struct io_uring rings[4];
	ring_reg_t *regs[4];
	for (int i = 0; i < 4; i++) {
		ring_or_skip(&rings[i], QD);
		CHECK_RC(ring_register_ranges(&rings[i], &r, 1, 0, &regs[i]), 0);
		struct ring_buf bufs[8];
		int n = ring_reg_bufs(regs[i], bufs, 8);
		CHECK(n == 3, "ring %d has %d buffers", i, n);
		CHECK(fdinfo_bufs(rings[i].ring_fd, NULL) == 3, "ring %d's fdinfo lists %d buffers", i,
		      fdinfo_bufs(rings[i].ring_fd, NULL));
	}
	if (clones_into_tables())
		CHECK(vmpin_reaches(pinned) == pinned, "VmPin grew from %" PRIu64 " to %" PRIu64 " with the rings: re-pinned",
		      pinned, vmpin_bytes());
	else
		skip_part("cloning never re-pins: this kernel (or PHYR_FORCE_FALLBACK=clone) cannot clone into a "
			  "table's slots, so the range was registered directly (VmPin %" PRIu64 " -> %" PRIu64 ")",
			  pinned, vmpin_bytes());
	CHECK_RC(phyr_unpin(r), 0);
	for (int i = 0; i < 4; i++)
		io_through(&rings[i], regs[i], p, len, 100 + (uint64_t)i);
	CHECK_RC(ring_unregister_ranges(regs[1]), 0);
	CHECK(ring_has_no_table(&rings[1]), "ring 1 kept a table");
	for (int i = 0; i < 4; i++)
		if (i != 1)
			io_through(&rings[i], regs[i], p + 4 * MiB, 8 * MiB, 200 + (uint64_t)i);
	for (int i = 0; i < 4; i++) {
		if (i != 1)
			CHECK_RC(ring_unregister_ranges(regs[i]), 0);
		io_uring_queue_exit(&rings[i]);
	}
	check_held_exactly("all rings unregistered", U(p), U(p) + len, 0, 0);
	munmap(p, len);
}

/* How many mappings meet [lo, hi). */
static int count_maps(uint64_t lo, uint64_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	unsigned long a, b;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
			n++;
	fclose(f);
	return n;
}

static char *dontfork_mem;
static void child_touches(void *arg)
{
	volatile char c = dontfork_mem[(uintptr_t)arg];
	(void)c;
}
static void child_reads_pattern(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < 8 * MiB; i += PAGE)
		if (dontfork_mem[i] != 0x44)
			_exit(3);
}

static void dontfork(void)
{
	size_t len = 8 * MiB;
	char *p = thp_alloc(len);
	memset(p, 0x44, len);
	dontfork_mem = p;
	int maps0 = count_maps(U(p), U(p) + len);
	phyr_t *r, *r2;
	CHECK_RC(phyr_pin(p + 100, len - 200, PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK, &r), 0);
	CHECK_RC(phyr_pin(p + 3 * MiB, MiB, PHYR_PIN_DONTFORK, &r2), 0); /* a lock pin inside it */
	/* The lock of [2 MiB, 4 MiB) splits the mapping in three; DONTFORK adds no cut. */
	CHECK(count_maps(U(p), U(p) + len) <= maps0 + 2, "mappings went from %d to %d", maps0,
	      count_maps(U(p), U(p) + len));
	int st = in_child(child_touches, (void *)(uintptr_t)MiB);
	CHECK(st == 128 + SIGSEGV, "a child touching PHYR_PIN_DONTFORK memory ended with %d, not SIGSEGV", st);
	CHECK(huge_bytes_in(p, len) == len, "fork split the parent's huge mappings: %" PRIu64 " of %zu huge",
	      huge_bytes_in(p, len), len);
	CHECK_RC(phyr_unpin(r), 0);
	st = in_child(child_touches, (void *)(uintptr_t)(3 * MiB));
	CHECK(st == 128 + SIGSEGV, "the other range still has it DONTFORK, child ended with %d", st);
	CHECK_RC(phyr_unpin(r2), 0);
	CHECK_CHILD(child_reads_pattern, NULL);
	CHECK(count_maps(U(p), U(p) + len) == maps0, "mappings went from %d to %d after the unpins", maps0,
	      count_maps(U(p), U(p) + len));
	/* Split: the halves are released separately, the marks go with the last. */
	phyr_t *tail;
	CHECK_RC(phyr_pin(p, len, PHYR_PIN_LONGTERM | PHYR_PIN_DONTFORK, &r), 0);
	CHECK_RC(phyr_split(r, 3 * MiB + 5, &tail), 0);
	CHECK_RC(phyr_unpin(r), 0);
	st = in_child(child_touches, (void *)(uintptr_t)MiB); /* p + 1 MiB: only the head covered it */
	CHECK(st == 0, "after the head went, a child touching its memory ended with %d", st);
	st = in_child(child_touches, (void *)(uintptr_t)(3 * MiB)); /* the folio both halves hold */
	CHECK(st == 128 + SIGSEGV, "the tail's share of the split folio lost DONTFORK: child ended with %d", st);
	CHECK_RC(phyr_unpin(tail), 0);
	CHECK_CHILD(child_reads_pattern, NULL);
	munmap(p, len);
}

static void errors(void)
{
	char *ro = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	phyr_t *r = NULL;
	CHECK_RC(phyr_pin(ro, 4 * PAGE, PHYR_PIN_LONGTERM, &r), -EACCES);
	CHECK(strstr(phyr_last_error(), "read-only") && strstr(phyr_last_error(), "PHYR_PIN_LONGTERM"),
	      "message: %s", phyr_last_error());
	munmap(ro, 4 * PAGE);

	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long vlo = 0, vhi = 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "[vvar]") && sscanf(line, "%lx-%lx", &vlo, &vhi) == 2)
			break;
	fclose(f);
	if (vlo) {
		uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going */
		CHECK_RC(phyr_pin((void *)vlo, PAGE, PHYR_PIN_LONGTERM, &r), -EOPNOTSUPP);
		CHECK(strstr(phyr_last_error(), "no folio"), "message: %s", phyr_last_error());
		CHECK(vmpin_reaches(pin0) == pin0, "a refused pin changed VmPin");
	}

	/* A shared mapping of a regular file: writeback needs dirty tracking. */
	char path[] = "/var/tmp/phyr-lt-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && ftruncate(fd, 16 * PAGE) == 0, "temp file");
	unlink(path);
	char *fm = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(fm != MAP_FAILED, "mmap file");
	memset(fm, 1, 16 * PAGE);
	CHECK_RC(phyr_pin(fm, 16 * PAGE, PHYR_PIN_LONGTERM, &r), -EOPNOTSUPP);
	CHECK(strstr(phyr_last_error(), "file") != NULL, "message: %s", phyr_last_error());
	check_held_exactly("refused file pin", U(fm), U(fm) + 16 * PAGE, 0, 0);
	CHECK(vmlck_bytes() == 0, "a refused pin left %" PRIu64 " locked", vmlck_bytes());
	munmap(fm, 16 * PAGE);
	close(fd);

	/* A range that runs into a hole: all or nothing. */
	char *m = base_alloc(8 * PAGE);
	munmap(m + 6 * PAGE, 2 * PAGE);
	CHECK_RC(phyr_pin(m, 8 * PAGE, PHYR_PIN_LONGTERM, &r), -EFAULT);
	check_held_exactly("refused pin over a hole", U(m), U(m) + 8 * PAGE, 0, 0);
	munmap(m, 6 * PAGE);
}

static void denied_child(void *arg)
{
	(void)arg;
	int nrs[] = { __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register };
	deny_syscalls(nrs, 3, EPERM);
	char *p = base_alloc(16 * PAGE);
	phyr_t *r;
	CHECK_RC(phyr_pin(p, 16 * PAGE, PHYR_PIN_LONGTERM, &r), -EOPNOTSUPP);
	CHECK(strstr(phyr_last_error(), "seccomp") && strstr(phyr_last_error(), "io_uring"), "message: %s",
	      phyr_last_error());
	CHECK_RC(phyr_pin(p, 16 * PAGE, PHYR_PIN_WRITE, &r), 0); /* locking still works */
	CHECK_RC(phyr_unpin(r), 0);
}

static void io_uring_denied(void)
{
	CHECK_CHILD(denied_child, NULL);
}

/* ------------------------------------------------------------- threads */

static char *shared_mem;
static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	struct io_uring ring;
	CHECK(io_uring_queue_init(8, &ring, 0) == 0, "ring");
	for (int i = 0; i < rounds(60); i++) {
		uint64_t off = (next_rand(&seed) % 32) * 100 * KiB;
		uint64_t len = 64 * KiB + next_rand(&seed) % (2 * MiB);
		phyr_t *r, *t = NULL;
		CHECK_RC(phyr_pin(shared_mem + off, len, PHYR_PIN_LONGTERM | (i % 3 ? 0 : PHYR_PIN_DONTFORK), &r), 0);
		if (i % 2)
			CHECK_RC(phyr_split(r, len / 2 + 1, &t), 0);
		ring_reg_t *reg;
		CHECK_RC(ring_register_ranges(&ring, &r, 1, 0, &reg), 0);
		CHECK_RC(phyr_unpin(r), 0);
		unsigned idx;
		CHECK_RC(ring_reg_lookup(reg, shared_mem + off, 1, &idx, NULL), 0);
		CHECK_RC(ring_unregister_ranges(reg), 0);
		if (t)
			CHECK_RC(phyr_unpin(t), 0);
	}
	io_uring_queue_exit(&ring);
	return NULL;
}

static void threads(void)
{
	size_t len = 8 * MiB;
	shared_mem = thp_alloc(len);
	uint64_t pin0 = vmpin_reaches(0); /* earlier cases' pins may still be going */
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(0x1234567 + i));
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	check_held_exactly("after the threads", U(shared_mem), U(shared_mem) + len, 0, 0);
	CHECK(vmpin_reaches(pin0) == pin0, "VmPin %" PRIu64 " after the threads, was %" PRIu64, vmpin_bytes(), pin0);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	CHECK(huge_bytes_in(shared_mem, len) == len, "huge mappings split by the threads' DONTFORK marks");
	munmap(shared_mem, len);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	struct io_uring probe;
	ring_or_skip(&probe, 1); /* long-term pins are io_uring pins */
	io_uring_queue_exit(&probe);
	RUN(pin_thp_with_strays);
	RUN(pin_base_pages);
	RUN(pin_hugetlb_2_mib);
	RUN(pin_hugetlb_1_gib);
	RUN(phys_stays_true);
	RUN(unmapped_stays_held);
	RUN(split_inside_a_folio);
	RUN(split_refuses_replaced_memory);
	RUN(child_closes_holders);
	RUN(holder_number_taken_by_another_ring);
	RUN(registered_after_its_holder_closed);
	RUN(registered_in_four_rings);
	RUN(dontfork);
	RUN(errors);
	RUN(io_uring_denied);
	RUN(threads);
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64, vmlck_bytes());
	return t_done();
}

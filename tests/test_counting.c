/* SPDX-License-Identifier: MIT */
/* Counted locking: overlapping pins, splits, and release in any order. */
#include "harness.h"

/* Two pins sharing the folio [4 MiB, 6 MiB): it stays locked until both go. */
static void overlapping_pins(char *p)
{
	phyr_t *a, *b;
	CHECK_RC(phyr_pin(p + 1 * MiB, 4 * MiB, 0, &a), 0);      /* locks [0, 6M) */
	CHECK_RC(phyr_pin(p + 4 * MiB + 10, 5 * MiB, 0, &b), 0); /* locks [4M, 10M) */
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p, p + 10 * MiB);
	CHECK_RC(phyr_unpin(a), 0);
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p + 4 * MiB, p + 10 * MiB);
	CHECK_RC(phyr_unpin(b), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
}

/* The same span pinned three times is unlocked by the third unpin only. */
static void same_span_thrice(char *p)
{
	phyr_t *r[3];
	for (int i = 0; i < 3; i++)
		CHECK_RC(phyr_pin(p + 6 * MiB, 2 * MiB, 0, &r[i]), 0);
	for (int i = 0; i < 2; i++) {
		CHECK_RC(phyr_unpin(r[i]), 0);
		CHECK_LOCKED_EXACTLY(p, 16 * MiB, p + 6 * MiB, p + 8 * MiB);
	}
	CHECK_RC(phyr_unpin(r[2]), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
}

/* A split inside a huge folio: the folio stays locked until both halves are
 * released, in either order; each half's other folios go with it. */
static void split_inside_folio(char *p, int tail_first)
{
	phyr_t *head, *tail;
	CHECK_RC(phyr_pin(p + 1 * MiB, 6 * MiB, 0, &head), 0); /* locks [0, 8M) */
	CHECK_RC(phyr_split(head, 2 * MiB + 100, &tail), 0);   /* cut at 3M+100 */
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p, p + 8 * MiB);

	void *a;
	size_t len;
	CHECK_RC(phyr_range(head, &a, &len), 0);
	CHECK(a == p + 1 * MiB && len == 2 * MiB + 100, "head %p +%zu", a, len);
	CHECK_RC(phyr_range(tail, &a, &len), 0);
	CHECK(a == p + 3 * MiB + 100 && len == 4 * MiB - 100, "tail %p +%zu", a, len);
	struct phyr_seg s[4];
	segs_of(head, s, 4);
	segs_of(tail, s, 4);

	if (tail_first) {
		CHECK_RC(phyr_unpin(tail), 0);
		CHECK_LOCKED_EXACTLY(p, 16 * MiB, p, p + 4 * MiB);
		CHECK_RC(phyr_unpin(head), 0);
	} else {
		CHECK_RC(phyr_unpin(head), 0);
		CHECK_LOCKED_EXACTLY(p, 16 * MiB, p + 2 * MiB, p + 8 * MiB);
		CHECK_RC(phyr_unpin(tail), 0);
	}
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
	CHECK(huge_bytes_in(p, 16 * MiB) == 16 * MiB, "split or unpin broke a huge mapping");
}

/* A split on a folio boundary shares nothing. */
static void split_on_boundary(char *p)
{
	phyr_t *head, *tail;
	CHECK_RC(phyr_pin(p, 8 * MiB, 0, &head), 0);
	CHECK_RC(phyr_split(head, 4 * MiB, &tail), 0);
	CHECK_RC(phyr_unpin(head), 0);
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p + 4 * MiB, p + 8 * MiB);
	CHECK_RC(phyr_unpin(tail), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
}

/* Base pages: a split inside page 1 keeps page 1 until both halves go. */
static void split_base_pages(void)
{
	char *p = base_alloc(64 * KiB);
	phyr_t *head, *tail;
	CHECK_RC(phyr_pin(p + 100, 3 * PAGE, 0, &head), 0); /* pages 0..3 */
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p, p + 4 * PAGE);
	CHECK_RC(phyr_split(head, PAGE, &tail), 0);          /* cut at 4196 */
	CHECK_RC(phyr_unpin(head), 0);
	CHECK_LOCKED_EXACTLY(p, 64 * KiB, p + PAGE, p + 4 * PAGE);
	CHECK_RC(phyr_unpin(tail), 0);
	CHECK_NOTHING_LOCKED(p, 64 * KiB);
	munmap(p, 64 * KiB);
}

/* Split a split: three pieces, released middle first. */
static void split_twice(char *p)
{
	phyr_t *a, *b, *c;
	CHECK_RC(phyr_pin(p + 1 * MiB, 12 * MiB, 0, &a), 0); /* [0, 14M) */
	CHECK_RC(phyr_split(a, 4 * MiB, &b), 0);             /* a [1M,5M)  b [5M,13M) */
	CHECK_RC(phyr_split(b, 4 * MiB, &c), 0);             /* b [5M,9M)  c [9M,13M) */
	CHECK_RC(phyr_unpin(b), 0);
	struct span s[4];
	int n = locked_spans(p, 16 * MiB, s, 4);
	CHECK(n == 2 && s[0].lo == U(p) && s[0].hi == U(p + 6 * MiB) && s[1].lo == U(p + 8 * MiB) &&
	      s[1].hi == U(p + 14 * MiB), "after releasing the middle: %d spans", n);
	CHECK_RC(phyr_unpin(a), 0);
	CHECK_LOCKED_EXACTLY(p, 16 * MiB, p + 8 * MiB, p + 14 * MiB);
	CHECK_RC(phyr_unpin(c), 0);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
}

static void split_errors(char *p)
{
	phyr_t *r, *t = NULL;
	CHECK_RC(phyr_pin(p, 1 * MiB, 0, &r), 0);
	CHECK_RC(phyr_split(r, 0, &t), -EINVAL);
	CHECK(strstr(phyr_last_error(), "offset 0") != NULL, "message: %s", phyr_last_error());
	CHECK_RC(phyr_split(r, 1 * MiB, &t), -EINVAL);
	CHECK_RC(phyr_split(r, 2 * MiB, &t), -EINVAL);
	CHECK_RC(phyr_split(r, (size_t)-1, &t), -EINVAL);
	CHECK_RC(phyr_split(r, 100, NULL), -EINVAL);
	CHECK_RC(phyr_split(NULL, 100, &t), -EINVAL);
	CHECK(t == NULL, "a failed split wrote *tail");
	void *a;
	size_t len;
	CHECK_RC(phyr_range(r, &a, &len), 0);
	CHECK(a == p && len == 1 * MiB, "a failed split changed the range");
	CHECK_RC(phyr_unpin(r), 0);
	CHECK_RC(phyr_split(r, 100, &t), -EINVAL);
	CHECK_NOTHING_LOCKED(p, 16 * MiB);
}

int main(int argc, char **argv)
{
	TEST_MAIN(argc, argv);
	char *p = thp_alloc(16 * MiB);
	RUN(overlapping_pins, p);
	RUN(same_span_thrice, p);
	RUN(split_inside_folio, p, 0);
	RUN(split_inside_folio, p, 1);
	RUN(split_on_boundary, p);
	RUN(split_twice, p);
	RUN(split_errors, p);
	RUN(split_base_pages);
	CHECK(huge_bytes_in(p, 16 * MiB) == 16 * MiB, "huge mapping split");
	CHECK(vmlck_bytes() == 0, "VmLck %" PRIu64 " after every range was released", vmlck_bytes());
	return t_done();
}

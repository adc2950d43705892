/* SPDX-License-Identifier: MIT */
/*
 * The public ABI as a C program sees it: the sizes and field offsets of the
 * public structs and the values of the public constants, one per line.
 * abi/check.sh (run by make check) compiles it against the header being built and compares
 * its output with abi/<release>.layout, written the same way from that
 * release's header: what a release promised may grow, never change.
 */
#include <phyr.h>

#include <stddef.h>
#include <stdio.h>

#define SIZE(t) printf("sizeof %s %zu align %zu\n", #t, sizeof(t), _Alignof(t))
#define FIELD(t, f) printf("offsetof %s.%s %zu size %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))
#define VALUE(c) printf("value %s %llu\n", #c, (unsigned long long)(c))

int main(void)
{
	SIZE(struct phyr_seg);
	FIELD(struct phyr_seg, addr);
	FIELD(struct phyr_seg, len);
	FIELD(struct phyr_seg, phys);
	FIELD(struct phyr_seg, page_shift);
	FIELD(struct phyr_seg, flags);
	SIZE(struct ring_buf);
	FIELD(struct ring_buf, addr);
	FIELD(struct ring_buf, len);
	FIELD(struct ring_buf, index);
	FIELD(struct ring_buf, page_shift);
	FIELD(struct ring_buf, flags);
	FIELD(struct ring_buf, resv);
	VALUE(PHYR_PIN_WRITE);
	VALUE(PHYR_PIN_PHYS);
	VALUE(PHYR_PIN_LONGTERM);
	VALUE(PHYR_PIN_DONTFORK);
	VALUE(PHYR_PIN_HUGE);
	VALUE(PHYR_SEG_HUGE);
	VALUE(PHYR_SEG_HUGETLB);
	VALUE(PHYR_SEG_SHARED);
	VALUE(PHYR_SEG_NOFOLIO);
	VALUE(PHYR_PHYS_UNKNOWN);
	VALUE(RING_BUF_COALESCED);
	VALUE(PHYR_VERSION_MAJOR);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * pin_segments - pin a buffer and print how it is backed.
 *
 *   cc $(pkg-config --cflags phyr) pin_segments.c $(pkg-config --libs phyr)
 */
#include <phyr.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	size_t len = 8u << 20;
	char *buf = malloc(len);
	if (!buf)
		return 1;
	memset(buf, 0, len);

	phyr_t *r;
	int rc = phyr_pin(buf, len, PHYR_PIN_WRITE, &r);
	if (rc < 0) {
		fprintf(stderr, "phyr_pin: %s: %s\n", strerror(-rc), phyr_last_error());
		return 1;
	}
	struct phyr_seg segs[16];
	int n = phyr_segs(r, segs, 16);
	printf("%d segment(s):\n", n);
	for (int i = 0; i < n && i < 16; i++)
		printf("  %#llx  %8llu KiB  %s pages%s\n", (unsigned long long)segs[i].addr,
		       (unsigned long long)(segs[i].len >> 10),
		       segs[i].page_shift == 12 ? "4 KiB" : segs[i].page_shift == 21 ? "2 MiB" : "1 GiB",
		       segs[i].flags & PHYR_SEG_HUGE ? " (huge)" : "");
	phyr_unpin(r);
	free(buf);
	return 0;
}

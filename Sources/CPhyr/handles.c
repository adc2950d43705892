// SPDX-License-Identifier: MIT
/*
 * The published lookup index of each registration handle slot: plain C
 * storage that a lookup reads with no lock and no lazily made global.  Two
 * levels -- a directory of chunks made on first use and never freed -- so
 * live registrations are limited by PHYR_REGISTRATIONS_MAX, not by a table
 * reserved up front.
 */
#include "phyr_kernel.h"

#include <errno.h>
#include <stdlib.h>

#define CHUNKS (PHYR_REGISTRATIONS_MAX / PHYR_HANDLE_CHUNK)

uintptr_t *phyr_published_chunks[CHUNKS];

int phyr_shim_handle_slot_reserve(unsigned slot)
{
	if (slot >= PHYR_REGISTRATIONS_MAX)
		return -EINVAL;
	uintptr_t **chunk = &phyr_published_chunks[slot / PHYR_HANDLE_CHUNK];
	if (__atomic_load_n(chunk, __ATOMIC_ACQUIRE))
		return 0;
	uintptr_t *fresh = calloc(PHYR_HANDLE_CHUNK, sizeof *fresh);
	if (!fresh)
		return -ENOMEM;
	/* The caller holds the registrar's lock: no other thread makes it. */
	__atomic_store_n(chunk, fresh, __ATOMIC_RELEASE);
	return 0;
}

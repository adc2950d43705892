/* SPDX-License-Identifier: MIT */
/*
 * 0.3.1's function types, exactly as its header declared them: compiled
 * with -Werror against the header being installed (abi/check.sh), this
 * fails on any changed parameter or return type of a function a program
 * built against 0.3.1 calls.
 */
#include <phyr.h>

#include <stddef.h>

int (*const t_phyr_pin)(const void *, size_t, unsigned, phyr_t **) = phyr_pin;
int (*const t_phyr_split)(phyr_t *, size_t, phyr_t **) = phyr_split;
int (*const t_phyr_unpin)(phyr_t *) = phyr_unpin;
int (*const t_phyr_range)(const phyr_t *, void **, size_t *) = phyr_range;
int (*const t_phyr_segs)(const phyr_t *, struct phyr_seg *, unsigned) = phyr_segs;
int (*const t_ring_register_ranges)(struct io_uring *, phyr_t *const *, unsigned, unsigned, ring_reg_t **) =
	ring_register_ranges;
int (*const t_ring_reg_bufs)(const ring_reg_t *, struct ring_buf *, unsigned) = ring_reg_bufs;
int (*const t_ring_reg_lookup)(const ring_reg_t *, const void *, size_t, unsigned *, size_t *) = ring_reg_lookup;
int (*const t_ring_unregister_ranges)(ring_reg_t *) = ring_unregister_ranges;
const char *(*const t_phyr_version)(void) = phyr_version;
const char *(*const t_phyr_last_error)(void) = phyr_last_error;

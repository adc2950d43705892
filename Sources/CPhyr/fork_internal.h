/* SPDX-License-Identifier: MIT */
/* What the fork guard's files (fork.c, lock.c, kept.c, selffiles.c) share
 * among themselves: nothing here is called from Swift. */
#pragma once
#include <stdint.h>
#include <time.h>

#define PHYR_INTERNAL __attribute__((visibility("hidden")))

/* futex(2) on a word private to this process. */
PHYR_INTERNAL long phyr_futex(int *word, int op, int value, const struct timespec *timeout);
/* Whether descriptor `fd` still names the file (device, inode). */
PHYR_INTERNAL int phyr_fd_names(int fd, uint64_t device, uint64_t inode);
/* In a child's first moments, single-threaded: closes its copies of the
 * parent's kept descriptors, remembering the callers' rings among them. */
PHYR_INTERNAL void phyr_forget_parents_descriptors(void);
/* In a child's first moments: the parent's /proc files are not the child's. */
PHYR_INTERNAL void phyr_forget_self_files(void);

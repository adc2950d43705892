// SPDX-License-Identifier: MIT
/*
 * The lock under every piece of libphyr's Swift state.
 */
#define _GNU_SOURCE
#include "phyr_kernel.h"
#include "fork_internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

long phyr_futex(int *word, int op, int value, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, value, timeout, NULL, 0);
}

/*
 * A plain futex lock (Drepper's "mutex 3": 0 free, 1 held, 2 held with
 * waiters) for the Swift side.  Not Swift's Mutex: that is a priority-
 * inheritance futex holding its owner's thread id, which Swift caches per
 * thread, so a forked child's thread would lock with its parent's id and a
 * contended unlock there fails the process.
 */
void phyr_shim_lock(int *word)
{
	int c = 0;
	if (__atomic_compare_exchange_n(word, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	if (c != 2)
		c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
	while (c != 0) {
		phyr_futex(word, FUTEX_WAIT, 2, NULL);
		c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
	}
}

void phyr_shim_unlock(int *word)
{
	if (__atomic_fetch_sub(word, 1, __ATOMIC_RELEASE) != 1) {
		__atomic_store_n(word, 0, __ATOMIC_RELEASE);
		phyr_futex(word, FUTEX_WAKE, 1, NULL);
	}
}

// SPDX-License-Identifier: MIT
/*
 * The descriptors libphyr keeps beyond a call -- holder rings, its
 * duplicates of callers' rings, its /proc files -- each recorded with the
 * file it names, so a forked child closes its copies at once and nothing
 * libphyr did not open is ever closed; and the identities of the callers'
 * rings a child's ancestors had buffer tables in.
 */
#define _GNU_SOURCE
#include "phyr_kernel.h"
#include "fork_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kept_fd {
	int fd;
	int kind;
	uint64_t device, inode;
};

static struct kept_fd *kept;
static size_t kept_count, kept_cap;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

/* Identities of the rings this process's ancestors had buffer tables in,
 * when they forked it (or an ancestor of it).  Changed only in a child's
 * first moments, single-threaded. */
static struct phyr_file_identity *inherited_rings;
static size_t inherited_count, inherited_cap;

int phyr_fd_names(int fd, uint64_t device, uint64_t inode)
{
	struct stat st;
	return fd >= 0 && syscall(SYS_fstat, fd, &st) == 0 && (uint64_t)st.st_dev == device &&
	       (uint64_t)st.st_ino == inode;
}

int phyr_shim_kept_fd_add(int fd, int kind)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	int rc = 0;
	pthread_mutex_lock(&kept_lock);
	/* An entry under the same number is stale: the program closed that
	 * descriptor behind libphyr's back, and the number came back to us. */
	for (size_t i = 0; i < kept_count; i++)
		if (kept[i].fd == fd)
			kept[i--] = kept[--kept_count];
	if (kept_count == kept_cap) {
		size_t cap = kept_cap ? 2 * kept_cap : 16;
		struct kept_fd *grown = realloc(kept, cap * sizeof *grown);
		if (grown) {
			kept = grown;
			kept_cap = cap;
		}
	}
	if (kept_count < kept_cap)
		kept[kept_count++] = (struct kept_fd){ fd, kind, (uint64_t)st.st_dev, (uint64_t)st.st_ino };
	else
		rc = -ENOMEM;
	pthread_mutex_unlock(&kept_lock);
	return rc;
}

void phyr_shim_kept_fd_forget(int fd, uint64_t device, uint64_t inode)
{
	pthread_mutex_lock(&kept_lock);
	for (size_t i = 0; i < kept_count; i++) {
		if (kept[i].fd == fd && kept[i].device == device && kept[i].inode == inode) {
			kept[i] = kept[--kept_count];
			break;
		}
	}
	pthread_mutex_unlock(&kept_lock);
}

void phyr_shim_kept_fd_close(int fd)
{
	pthread_mutex_lock(&kept_lock);
	for (size_t i = 0; i < kept_count; i++) {
		if (kept[i].fd != fd)
			continue;
		/* Closed only while it still names what libphyr opened. */
		if (phyr_fd_names(fd, kept[i].device, kept[i].inode))
			close(fd);
		kept[i] = kept[--kept_count];
		break;
	}
	pthread_mutex_unlock(&kept_lock);
}

int phyr_shim_kept_fd_count(void)
{
	pthread_mutex_lock(&kept_lock);
	int n = (int)kept_count;
	pthread_mutex_unlock(&kept_lock);
	return n;
}

/* Kept descriptors live high, where a program's own files seldom are: its
 * lowest free numbers stay its own, and a number it opens after closing
 * every descriptor rarely lands on one libphyr reopens later. */
static int kept_floor;

int phyr_shim_kept_fd_moved_high(int fd)
{
	int floor = __atomic_load_n(&kept_floor, __ATOMIC_RELAXED);
	if (floor == 0) {
		struct rlimit rl;
		floor = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (int)(rl.rlim_cur / 2) : 512;
		floor = floor > 512 ? 512 : floor < 3 ? 3 : floor;
		__atomic_store_n(&kept_floor, floor, __ATOMIC_RELAXED);
	}
	if (fd >= floor)
		return fd;
	int saved = errno;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0) {
		errno = saved;
		return fd; /* no room up there: where it is */
	}
	close(fd);
	return high;
}

static void remember_inherited(uint64_t device, uint64_t inode)
{
	for (size_t i = 0; i < inherited_count; i++)
		if (inherited_rings[i].device == device && inherited_rings[i].inode == inode)
			return;
	if (inherited_count == inherited_cap) {
		size_t cap = inherited_cap ? 2 * inherited_cap : 8;
		struct phyr_file_identity *grown = realloc(inherited_rings, cap * sizeof *grown);
		if (!grown)
			return;
		inherited_rings = grown;
		inherited_cap = cap;
	}
	inherited_rings[inherited_count++] = (struct phyr_file_identity){ device, inode };
}

/* In a child: closes its copies of the parent's kept descriptors -- those
 * that still name the same file: a child made without the handlers may have
 * closed a number and opened something else there -- and remembers the
 * callers' rings among them.  Runs single-threaded. */
void phyr_forget_parents_descriptors(void)
{
	for (size_t i = 0; i < kept_count; i++) {
		struct kept_fd *k = &kept[i];
		if (k->kind == PHYR_KEPT_RING)
			remember_inherited(k->device, k->inode);
		if (phyr_fd_names(k->fd, k->device, k->inode))
			close(k->fd);
	}
	kept_count = 0;
	pthread_mutex_init(&kept_lock, NULL);
}

int phyr_shim_ring_inherited(uint64_t device, uint64_t inode)
{
	phyr_shim_fork_epoch(); /* a fork without handlers notes them first */
	int found = 0;
	for (size_t i = 0; i < inherited_count && !found; i++)
		found = inherited_rings[i].device == device && inherited_rings[i].inode == inode;
	return found;
}

/* SPDX-License-Identifier: MIT */
/*
 * deny - run a program under a seccomp filter, as a container would.
 *
 *   deny SYSCALL[,SYSCALL...] ERRNO PROGRAM [ARG...]
 *
 * SYSCALL is a name this file knows (io_uring_setup, io_uring_enter,
 * io_uring_register, kcmp) and ERRNO a number.  tests/run.sh uses it to run
 * tests where io_uring is denied: ring tests must skip saying so, the rest
 * must pass.  Not a test itself.
 */
#include "harness.h"

static int number(const char *name)
{
	static const struct { const char *name; int nr; } known[] = {
		{ "io_uring_setup", __NR_io_uring_setup },
		{ "io_uring_enter", __NR_io_uring_enter },
		{ "io_uring_register", __NR_io_uring_register },
		{ "kcmp", 312 },
	};
	for (unsigned i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(known[i].name, name) == 0)
			return known[i].nr;
	fprintf(stderr, "deny: unknown system call %s\n", name);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: deny SYSCALL[,SYSCALL...] ERRNO PROGRAM [ARG...]\n");
		return 2;
	}
	int nrs[16], n = 0;
	for (char *name = strtok(argv[1], ","); name && n < 16; name = strtok(NULL, ","))
		nrs[n++] = number(name);
	deny_syscalls(nrs, n, atoi(argv[2]));
	execv(argv[3], argv + 3);
	fprintf(stderr, "deny: exec %s: %s\n", argv[3], strerror(errno));
	return 2;
}

/* SPDX-License-Identifier: MIT */
/* dlopen(3)s libphyr from a program with no Swift and no link to it, pins,
 * unpins, dlcloses and exits: run under `env -i` by tests/run.sh. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "libphyr.so.0";
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return 1;
	}
	int (*pin)(const void *, size_t, unsigned, void **) = (int (*)(const void *, size_t, unsigned, void **))dlsym(h, "phyr_pin");
	int (*unpin)(void *) = (int (*)(void *))dlsym(h, "phyr_unpin");
	const char *(*version)(void) = (const char *(*)(void))dlsym(h, "phyr_version");
	if (!pin || !unpin || !version) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		return 1;
	}
	static char buf[3 * 4096];
	memset(buf, 1, sizeof buf);
	void *r = NULL;
	int rc = pin(buf + 10, 5000, 0, &r);
	if (rc != 0 || unpin(r) != 0) {
		fprintf(stderr, "pin/unpin: %d\n", rc);
		return 1;
	}
	printf("libphyr %s loaded, pinned, unpinned\n", version());
	if (dlclose(h) != 0) {
		fprintf(stderr, "dlclose: %s\n", dlerror());
		return 1;
	}
	return 0;
}

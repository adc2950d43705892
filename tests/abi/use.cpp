/* SPDX-License-Identifier: MIT */
// The header from C++: extern "C" linkage and the constants as C++ sees them.
#include <phyr.h>

#include <cstdio>
#include <cstring>

static_assert(sizeof(phyr_seg) == 32, "struct phyr_seg is 32 bytes");
static_assert(PHYR_PHYS_UNKNOWN == ~uint64_t(0), "PHYR_PHYS_UNKNOWN is all ones");

int main()
{
	phyr_t *r = nullptr;
	if (phyr_pin(nullptr, 0, 0, &r) != -22 || std::strlen(phyr_last_error()) == 0)
		return 1;
	std::printf("C++ sees libphyr %s\n", phyr_version());
	return 0;
}

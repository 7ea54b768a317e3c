/* meson compiles this file with -fno-stack-clash-protection: the frame below is allocated with
 * one move of the stack pointer and no probes, so its first write is its far end. */
#include "noprobe.h"

int mkt_noprobe_frame(void)
{
	volatile char big[MKT_NOPROBE_KIB * 1024];

	big[0] = 1;
	big[sizeof(big) - 1] = 2;
	return big[0] + big[sizeof(big) - 1];
}

/* A function built without -fstack-clash-protection (tests/noprobe.c), as a unikernel's own
 * objects or a program built without mkhost's pkg-config flags may be. */
#ifndef MKHOST_NOPROBE_H
#define MKHOST_NOPROBE_H

/* The size of its one frame: less than the guard below every task stack (256 KiB), so that even
 * unprobed, its first write lands in the guard of a 64 KiB stack. */
#define MKT_NOPROBE_KIB 192

/* Uses a frame of MKT_NOPROBE_KIB KiB, writing its far end (the lowest address) first. */
int mkt_noprobe_frame(void);

#endif

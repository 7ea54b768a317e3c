/* What mkhost draws at random (the MACs it makes up, the seeds of --net-fault specs without
 * seed=): from the kernel, or, when the run has a seed (--seed=S, or any --clock=virtual run),
 * from that seed and the device's name, so that the same program draws the same values in every
 * run, whatever order it connects its devices in. */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t mk__splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t mk__seeded_random(const struct mk__sched *s, const char *name, uint64_t salt)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the name */

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	uint64_t state = s->seed ^ h ^ salt;
	mk__splitmix64(&state);
	return mk__splitmix64(&state);
}

void mk__random_mac(struct mk__sched *s, const char *name, uint8_t mac[6])
{
	if (s->seeded) {
		uint64_t x = mk__seeded_random(s, name, 0x4d4143); /* "MAC" */
		memcpy(mac, &x, 6);
	} else if (getrandom(mac, 6, 0) != 6) {
		uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
		memcpy(mac, &x, 6);
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}

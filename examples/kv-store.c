/* kv-store: a key-value store on a block device, which survives restarts (and kills).
 *
 * Build (meson builds it as build/examples/kv-store), or by hand after `ninja -C build`:
 *   cc -O2 -Iinclude examples/kv-store.c build/src/libmkhost.a -luring -o kv-store
 * Run:
 *   truncate -s 1M kv.img                         # a fresh image: all zeros, an empty store
 *   ./kv-store --block:disk=kv.img -- set colour blue
 *   ./kv-store --block:disk=kv.img -- get colour   # prints "blue", in this run or any later one
 *   ./kv-store --block:disk=kv.img -- del colour
 *   ./kv-store --block:disk=kv.img -- list
 *
 * The layout is a hash table with one record per sector. A key hashes to a sector; if that one
 * holds another key, the next sector is tried, and so on (linear probing). A record is written
 * with one sector write, which mkhost never tears, and flushed before the command says "ok", so a
 * `set` is either entirely there after a crash or kill, or not at all. A deleted key leaves a
 * tombstone, so that the keys probed past it can still be found.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkhost.h"

/* A record, at the start of its sector; the key and the value follow it. A sector of zeros is a
 * free slot, so a fresh image needs no formatting. */
struct record {
	uint32_t magic; /* RECORD_MAGIC */
	uint8_t state;  /* LIVE or DELETED */
	uint8_t pad;
	uint16_t key_len;
	uint16_t value_len;
	uint16_t pad2;
	uint32_t checksum; /* FNV-1a of the whole sector, with this field at 0 */
};

#define RECORD_MAGIC 0x564b4b4du /* "MKKV" */
enum { FREE = 0, LIVE = 1, DELETED = 2 };

struct store {
	mk_block *disk;
	size_t sector;  /* bytes per sector: one record */
	uint64_t slots; /* sectors on the device */
	uint8_t *buf;   /* one sector */
};

static uint32_t fnv1a(const void *p, size_t n, uint32_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static uint32_t sector_checksum(const uint8_t *sector, size_t size)
{
	static const uint8_t zero[4];
	size_t at = offsetof(struct record, checksum);
	uint32_t h = 2166136261u;

	h = fnv1a(sector, at, h);
	h = fnv1a(zero, sizeof(zero), h);
	return fnv1a(sector + at + 4, size - at - 4, h);
}

/* Read slot (i) into st->buf and say what it holds. -EIO for a sector that is not a record: a
 * damaged store, or an image that was never a store. */
static int load(struct store *st, uint64_t i, struct record *rec)
{
	int err = mk_block_read(st->disk, i * st->sector, st->buf, st->sector, 0);

	if (err != 0)
		return err;
	memcpy(rec, st->buf, sizeof(*rec));
	if (rec->magic == 0) {
		for (size_t j = 0; j < st->sector; j++)
			if (st->buf[j] != 0)
				return -EIO;
		rec->state = FREE;
		return 0;
	}
	if (rec->magic != RECORD_MAGIC || sector_checksum(st->buf, st->sector) != rec->checksum ||
	    sizeof(*rec) + rec->key_len + rec->value_len > st->sector)
		return -EIO;
	return 0;
}

static const char *key_of(const struct store *st)
{
	return (const char *)st->buf + sizeof(struct record);
}

static bool holds(const struct store *st, const struct record *rec, const char *key)
{
	return rec->state == LIVE && rec->key_len == strlen(key) &&
	       memcmp(key_of(st), key, rec->key_len) == 0;
}

/* Probe from the key's home slot. Stores in (*found) the slot that holds (key), or else the slot
 * a new record for it should go to (the first tombstone or free slot met), and in (*present)
 * whether the key is there. Leaves the found record in st->buf. */
static int find(struct store *st, const char *key, uint64_t *found, bool *present)
{
	uint64_t home = fnv1a(key, strlen(key), 2166136261u) % st->slots;
	uint64_t reuse = UINT64_MAX;
	struct record rec;

	for (uint64_t n = 0; n < st->slots; n++) {
		uint64_t i = (home + n) % st->slots;
		int err = load(st, i, &rec);
		if (err != 0) {
			fprintf(stderr, "kv-store: sector %llu is not a kv-store record: %s\n",
			        (unsigned long long)i, mk_strerror(err));
			return err;
		}
		if (holds(st, &rec, key)) {
			*found = i;
			*present = true;
			return 0;
		}
		if (rec.state == DELETED && reuse == UINT64_MAX)
			reuse = i;
		if (rec.state == FREE) {
			*found = reuse != UINT64_MAX ? reuse : i;
			*present = false;
			return 0;
		}
	}
	if (reuse == UINT64_MAX)
		return -ENOSPC;
	*found = reuse;
	*present = false;
	return 0;
}

/* Say why writing a record failed. -ENOSPC here comes from the file system that holds the image:
 * a write into a sparse image needs space there (the store's own fullness is find's -ENOSPC). */
static void write_failed(const char *cmd, const char *key, int err)
{
	if (err == -ENOSPC)
		fprintf(stderr,
		        "kv-store: %s %s: the file system that holds the image is full (the block "
		        "write failed: %s); free space on it (an image made with fallocate -l "
		        "rather than truncate -s takes its space up front)\n",
		        cmd, key, mk_strerror(err));
	else if (err == -EROFS)
		fprintf(stderr, "kv-store: %s %s: %s\n", cmd, key,
		        mk_last_error()); /* which file, and how to fix it */
	else
		fprintf(stderr, "kv-store: %s %s: %s\n", cmd, key, mk_strerror(err));
}

/* Write a record into slot (i) and make it durable. */
static int put(struct store *st, uint64_t i, uint8_t state, const char *key, const char *value)
{
	struct record rec = {
	    RECORD_MAGIC, state, 0, (uint16_t)strlen(key), (uint16_t)strlen(value), 0, 0};
	int err;

	memset(st->buf, 0, st->sector);
	memcpy(st->buf + sizeof(rec), key, rec.key_len);
	memcpy(st->buf + sizeof(rec) + rec.key_len, value, rec.value_len);
	memcpy(st->buf, &rec, sizeof(rec));
	rec.checksum = sector_checksum(st->buf, st->sector);
	memcpy(st->buf, &rec, sizeof(rec));
	err = mk_block_write(st->disk, i * st->sector, st->buf, st->sector, 0);
	return err != 0 ? err : mk_block_flush(st->disk);
}

static int cmd_set(struct store *st, const char *key, const char *value)
{
	uint64_t slot;
	bool present;
	int err;

	if (sizeof(struct record) + strlen(key) + strlen(value) > st->sector) {
		fprintf(stderr, "kv-store: a key and its value take at most %zu bytes together\n",
		        st->sector - sizeof(struct record));
		return 1;
	}
	err = find(st, key, &slot, &present);
	if (err == -ENOSPC) {
		fprintf(stderr,
		        "kv-store: set %s: the store is full (every one of its %llu slots holds a "
		        "key); delete a key, or start a larger image\n",
		        key, (unsigned long long)st->slots);
		return 1;
	}
	if (err != 0)
		return 1; /* find said why */
	err = put(st, slot, LIVE, key, value);
	if (err != 0) {
		write_failed("set", key, err);
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int cmd_get(struct store *st, const char *key)
{
	uint64_t slot;
	bool present;
	struct record rec;

	if (find(st, key, &slot, &present) != 0)
		return 1;
	if (!present) {
		fprintf(stderr, "kv-store: no key '%s'\n", key);
		return 1;
	}
	memcpy(&rec, st->buf, sizeof(rec));
	printf("%.*s\n", (int)rec.value_len, key_of(st) + rec.key_len);
	return 0;
}

static int cmd_del(struct store *st, const char *key)
{
	uint64_t slot;
	bool present;
	int err;

	if (find(st, key, &slot, &present) != 0)
		return 1;
	if (!present) {
		fprintf(stderr, "kv-store: no key '%s'\n", key);
		return 1;
	}
	err = put(st, slot, DELETED, "", "");
	if (err != 0) {
		write_failed("del", key, err);
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int cmd_list(struct store *st)
{
	struct record rec;

	for (uint64_t i = 0; i < st->slots; i++) {
		if (load(st, i, &rec) != 0) {
			fprintf(stderr, "kv-store: sector %llu is not a kv-store record\n",
			        (unsigned long long)i);
			return 1;
		}
		if (rec.state == LIVE)
			printf("%.*s=%.*s\n", (int)rec.key_len, key_of(st), (int)rec.value_len,
			       key_of(st) + rec.key_len);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: kv-store --block:disk=IMAGE -- set KEY VALUE | get KEY | del KEY | "
	                "list\n"
	                "  make an image first: truncate -s 1M IMAGE\n");
	return 2;
}

static int app(int argc, char **argv, void *arg)
{
	struct store st;
	int rc;

	(void)arg;
	if (argc < 2)
		return usage();
	if (mk_block_connect("disk", &st.disk) != 0) {
		fprintf(stderr, "kv-store: %s\n",
		        mk_last_error()); /* the device, the cause, the fix */
		return 1;
	}
	st.sector = mk_block_sector_size(st.disk);
	st.slots = mk_block_length(st.disk) / st.sector;
	st.buf = malloc(st.sector);
	if (st.buf == NULL)
		return 1;

	if (strcmp(argv[1], "set") == 0 && argc == 4)
		rc = cmd_set(&st, argv[2], argv[3]);
	else if (strcmp(argv[1], "get") == 0 && argc == 3)
		rc = cmd_get(&st, argv[2]);
	else if (strcmp(argv[1], "del") == 0 && argc == 3)
		rc = cmd_del(&st, argv[2]);
	else if (strcmp(argv[1], "list") == 0 && argc == 2)
		rc = cmd_list(&st);
	else
		rc = usage();
	free(st.buf);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = mk_run(argc, argv, app, NULL);

	if (rc < 0) {
		fprintf(stderr, "kv-store: %s\n", mk_strerror(rc));
		return 1;
	}
	return rc;
}

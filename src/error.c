/* Error codes and the sentences that explain connect and argument failures. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Per thread, like the scheduler, so that two schedulers never share it. */
static _Thread_local char last_error[MK__ERROR_MAX];

#define ELLIPSIS  "..."
#define WORD_KEEP 48 /* a long word (a path) is never elided below this */

static bool utf8_continuation(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

/* Write (len) bytes of (src) into (dst), which holds (keep) + 1 bytes: the whole of it when it
 * fits, else its start and its end around "..." (never cutting a UTF-8 character). Returns the
 * length written. */
static size_t elide(char *dst, size_t keep, const char *src, size_t len)
{
	size_t head, tail;

	if (len <= keep) {
		memmove(dst, src, len);
		dst[len] = '\0';
		return len;
	}
	head = (keep - strlen(ELLIPSIS)) / 2;
	tail = keep - strlen(ELLIPSIS) - head;
	while (head > 0 && utf8_continuation(src[head]))
		head--;
	while (tail > 0 && utf8_continuation(src[len - tail]))
		tail--;
	memmove(dst, src, head);
	memcpy(dst + head, ELLIPSIS, strlen(ELLIPSIS));
	memmove(dst + head + strlen(ELLIPSIS), src + len - tail, tail);
	dst[head + strlen(ELLIPSIS) + tail] = '\0';
	return head + strlen(ELLIPSIS) + tail;
}

void mk__elide(char *dst, size_t size, const char *src)
{
	if (size > strlen(ELLIPSIS) + 2)
		elide(dst, size - 1, src, strlen(src));
	else if (size > 0)
		dst[0] = '\0';
}

/* Make the sentence (msg, len bytes, in a buffer of its own) fit last_error. The words of a
 * sentence are short; what makes one long is a path or an argument echoed in it. So the
 * longest word is shortened in its middle, again until the sentence fits: the cause and the
 * fix stay whole, and the path keeps its start and its file name. */
static void fit(char *msg, size_t len)
{
	while (len >= sizeof(last_error)) {
		size_t best = 0, best_len = 0;
		for (size_t i = 0; i < len;) {
			size_t w = strcspn(msg + i, " ");
			if (w > best_len) {
				best = i;
				best_len = w;
			}
			i += w + 1;
		}
		if (best_len <= WORD_KEEP)
			break;
		size_t over = len - (sizeof(last_error) - 1);
		size_t keep = best_len > over + WORD_KEEP ? best_len - over : WORD_KEEP;
		size_t got = elide(msg + best, keep, msg + best, best_len);
		memmove(msg + best + got, msg + best + best_len, len - best - best_len + 1);
		len -= best_len - got;
	}
	snprintf(last_error, sizeof(last_error), "%s", msg); /* cut only if all else failed */
}

int mk__fail(int err, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int len;

	va_start(ap, fmt);
	len = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (len < 0) { /* out of memory: the start of the sentence, at least */
		va_start(ap, fmt);
		vsnprintf(last_error, sizeof(last_error), fmt, ap);
		va_end(ap);
		return err;
	}
	fit(msg, (size_t)len);
	free(msg);
	return err;
}

void mk__clear_error(void)
{
	last_error[0] = '\0';
}

const char *mk_last_error(void)
{
	return last_error;
}

const char *mk_strerror(int err)
{
	if (err == 0)
		return "Success";
	if (err > 0)
		err = -err;
	/* strerror() may use a shared buffer for unknown codes; these are the ones mkhost returns,
	 * described in its own terms where it gives them a meaning of their own. */
	switch (err) {
	case -ECANCELED:
		return "Task cancelled";
	case -EPERM:
		return "Operation not permitted (outside mk_run, or from a hook)";
	case -EDEADLK:
		return "Every task is waiting and nothing can wake them";
	default:
		return strerrordesc_np(-err) ? strerrordesc_np(-err) : "Unknown error";
	}
}

const char *mk_version(void)
{
	return "0.1.0";
}

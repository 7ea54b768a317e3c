/* Hooks run after every poll for events, as mkernel's Hook. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct mk_hook {
	struct mk_hook *next;
	void (*fn)(void *arg);
	void *arg;
	bool removed;
};

mk_hook *mk_hook_add(void (*fn)(void *arg), void *arg)
{
	struct mk__sched *s = mk__sched_current;
	struct mk_hook *h;

	if (s == NULL || fn == NULL)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->fn = fn;
	h->arg = arg;
	h->next = s->hooks;
	s->hooks = h;
	return h;
}

static void sweep(struct mk__sched *s)
{
	struct mk_hook **p = &s->hooks;

	while (*p != NULL) {
		struct mk_hook *h = *p;
		if (h->removed) {
			*p = h->next;
			free(h);
		} else {
			p = &h->next;
		}
	}
}

int mk_hook_remove(mk_hook *h)
{
	struct mk__sched *s = mk__sched_current;

	if (s == NULL)
		return -EPERM;
	if (h == NULL)
		return -EINVAL;
	h->removed = true;
	if (!s->in_hook)
		sweep(s);
	return 0;
}

void mk__hooks_run(struct mk__sched *s)
{
	if (s->hooks == NULL)
		return;
	s->in_hook = true;
	for (struct mk_hook *h = s->hooks; h != NULL; h = h->next)
		if (!h->removed)
			h->fn(h->arg);
	s->in_hook = false;
	sweep(s);
}

void mk__hooks_free(struct mk__sched *s)
{
	for (struct mk_hook *h = s->hooks; h != NULL; h = h->next)
		h->removed = true;
	sweep(s);
}

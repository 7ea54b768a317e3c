/* The public header compiles alone under -std=c99 -pedantic -Werror (see meson.build). */
#include "mkhost.h"

int main(void)
{
	struct mk_net_config cfg = {{0}, 0};
	struct mk_config conf = {0, MK_BACKEND_AUTO, 0, MK_CLOCK_REAL, 0, 0};
	(void)cfg;
	(void)conf;
	return (int)(sizeof(cfg) + sizeof(conf)) == 0;
}

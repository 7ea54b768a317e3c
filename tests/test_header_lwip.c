/* mkhost-lwip.h compiles alone under -std=c99 -pedantic -Werror (see meson.build): it needs
 * neither lwIP's headers nor a GNU dialect. */
#include "mkhost-lwip.h"

int main(void)
{
	struct mk_lwip_stats st = {0, 0, 0, 0, 0, 0, 0, 0, 0};
	mk_lwip *l = 0;
	(void)l;
	return (int)sizeof(st) == 0;
}

#!/usr/bin/env bash
# mkhost-solo5-cc's refusals and flags: what a Makefile meets when something is wrong.
# And mkhost-solo5-elftool gen-manifest's, when built with jansson (the third argument says so).
#   cc.sh PATH-TO-mkhost-solo5-cc PATH-TO-mkhost-solo5-elftool jansson|""
set -euo pipefail
cc=$1
elftool=$2
jansson=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# refused DESCRIPTION TEXT COMMAND...: the command fails and says TEXT on stderr
refused() {
	local what=$1 text=$2
	shift 2
	if "$@" >"$tmp/out" 2>"$tmp/err"; then
		fail "$what: accepted"
	elif ! grep -qF -- "$text" "$tmp/err"; then
		fail "$what: stderr lacks '$text': $(cat "$tmp/err")"
	fi
}

cat >"$tmp/app.c" <<'C'
#include "solo5.h"
void *memcpy(void *d, const void *s, __SIZE_TYPE__ n);
static char a[64], b[64];
int solo5_app_main(const struct solo5_start_info *si)
{
	(void)si;
	memcpy(a, b, sizeof(a));
	return a[0];
}
C
cat >"$tmp/nomain.c" <<'C'
int solo5_app_mian(void);
int solo5_app_mian(void) { return 0; }
C
cat >"$tmp/hosted.c" <<'C'
#include <stdio.h>
C

"$cc" -c "$tmp/app.c" -o "$tmp/app.o" || fail "compile mode: app.c does not compile"
refused "a name the unikernel does not define" "uses memcpy but does not define it" \
	"$cc" -z solo5-abi=hvt "$tmp/app.o" -o "$tmp/app"
[ ! -e "$tmp/app" ] || fail "a refused link left a program behind"
"$cc" -c "$tmp/nomain.c" -o "$tmp/nomain.o"
refused "no solo5_app_main" "defines no solo5_app_main()" "$cc" "$tmp/nomain.o" -o "$tmp/nomain"
refused "an ABI mkhost does not run" "-z solo5-abi=xen" \
	"$cc" -z solo5-abi=xen "$tmp/nomain.o" -o "$tmp/x"
refused "no input files" "no input files" "$cc"
refused "the system's headers are not the unikernel's" "stdio.h" "$cc" -c "$tmp/hosted.c" -o "$tmp/h.o"
MKHOST_SOLO5_V=1 "$cc" -c "$tmp/app.c" -o "$tmp/app.o" 2>"$tmp/err"
for flag in -ffreestanding -fstack-protector-strong -nostdinc; do
	grep -qF -- "$flag" "$tmp/err" || fail "compile mode lacks $flag: $(cat "$tmp/err")"
done
case $(uname -m) in
x86_64) grep -qF -- "-mstack-protector-guard=global" "$tmp/err" ||
	fail "compile mode on x86-64 lacks -mstack-protector-guard=global" ;;
esac
[ -n "$("$cc" -dumpmachine)" ] || fail "-dumpmachine says nothing"

if [ -n "$jansson" ]; then
	gen() { # gen JSON: gen-manifest on that text
		printf '%s\n' "$1" >"$tmp/m.json"
		"$elftool" gen-manifest "$tmp/m.json" "$tmp/m.c"
	}
	good='{"type": "solo5.manifest", "version": 1, "devices": [{"name": "a0", "type": "NET_BASIC"}]}'
	gen "$good" || fail "a good manifest is refused"
	"$cc" -c "$tmp/m.c" -o "$tmp/m.o" || fail "the generated manifest does not compile freestanding"
	gen '{"type": "solo5.manifest", "version": 1, "devices": []}' || fail "no devices is a manifest"
	refused "JSON that does not parse" "m.json:2:0: unexpected token" gen '{"type": '
	refused "not a Solo5 manifest" 'needs "type": "solo5.manifest"' gen '{"version": 1}'
	refused "another version" '"version" must be 1' gen '{"type": "solo5.manifest", "version": 2, "devices": []}'
	refused "a bad device name" "device name 'a-b' must be 1 to 67 letters and digits" \
		gen '{"type": "solo5.manifest", "version": 1, "devices": [{"name": "a-b", "type": "NET_BASIC"}]}'
	refused "an unknown device type" "device type 'NET_FAST' is not NET_BASIC or BLOCK_BASIC" \
		gen '{"type": "solo5.manifest", "version": 1, "devices": [{"name": "a", "type": "NET_FAST"}]}'
	refused "a device declared twice" "device 'a' is declared twice" \
		gen '{"type": "solo5.manifest", "version": 1, "devices": [{"name": "a", "type": "NET_BASIC"}, {"name": "a", "type": "BLOCK_BASIC"}]}'
	refused "a device without a type" "device 1 needs a \"name\" and a \"type\"" \
		gen '{"type": "solo5.manifest", "version": 1, "devices": [{"name": "a"}]}'

	# An unchanged Solo5-style Makefile, which calls plain solo5-elftool: with --bindir first in
	# PATH, it finds mkhost's, and the program checks its devices against the manifest.
	mkdir "$tmp/mk"
	cat >"$tmp/mk/Makefile" <<'MAKE'
all: app
manifest.c: manifest.json
	solo5-elftool gen-manifest manifest.json manifest.c
%.o: %.c
	$(CC) -O2 -c $< -o $@
app: app.o manifest.o
	$(CC) -z solo5-abi=hvt app.o manifest.o -o app
MAKE
	printf '%s\n' '{"type": "solo5.manifest", "version": 1, "devices": [{"name": "service0", "type": "NET_BASIC"}]}' \
		>"$tmp/mk/manifest.json"
	cat >"$tmp/mk/app.c" <<'C'
#include "solo5.h"
int solo5_app_main(const struct solo5_start_info *si)
{
	(void)si;
	solo5_console_write("app: ran\n", 9);
	return 0;
}
C
	bindir=$("$cc" --bindir)
	[ -x "$bindir/solo5-elftool" ] || fail "--bindir ($bindir) holds no solo5-elftool"
	if ! PATH="$bindir:$PATH" make -s -C "$tmp/mk" CC="$(realpath "$cc")" >"$tmp/out" 2>&1; then
		fail "a Makefile calling solo5-elftool, with --bindir in PATH: $(cat "$tmp/out")"
	else
		refused "the manifest of a Makefile calling solo5-elftool is checked" \
			"Device 'service0' of type NET_BASIC declared but not attached" "$tmp/mk/app"
		"$tmp/mk/app" --net:service0=hub:lan >"$tmp/out" 2>&1 ||
			fail "the device of the manifest given: $(cat "$tmp/out")"
		grep -qF "app: ran" "$tmp/out" || fail "the program with its manifest did not run: $(cat "$tmp/out")"
	fi
else
	refused "gen-manifest without jansson" "install libjansson-dev" \
		"$elftool" gen-manifest /dev/null "$tmp/m.c"
fi

[ "$fails" -eq 0 ] || exit 1
echo "mkhost-solo5-cc: ok"

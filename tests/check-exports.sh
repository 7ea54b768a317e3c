#!/bin/sh
# Every dynamic symbol that a library defines starts with its prefix: nothing internal leaks.
#   check-exports.sh LIB [PREFIX [MINIMUM [NAME...]]]   (mk_ and 20 for libmkhost)
# NAMEs are exported on purpose without the prefix (libmkhost-lwip's sys_now).
set -eu
lib=$1
prefix=${2:-mk_}
min=${3:-20}
shift $(($# < 3 ? $# : 3))
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' |
	grep -v '^MKHOST_' || true)
for name in "$@"; do
	syms=$(printf '%s\n' "$syms" | grep -vx "$name" || true)
done
bad=$(printf '%s\n' "$syms" | grep -v "^$prefix" | grep -v '^$' || true)
internal=$(printf '%s\n' "$syms" | grep '^mk__' || true)
if [ -n "$bad$internal" ]; then
	echo "symbols that should not be exported:"; printf '%s\n' $bad $internal
	exit 1
fi
n=$(printf '%s\n' "$syms" | grep -c "^$prefix")
[ "$n" -ge "$min" ] || { echo "only $n $prefix symbols exported"; exit 1; }
echo "ok: $n symbols, all public"

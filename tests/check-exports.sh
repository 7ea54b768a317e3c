#!/bin/sh
# Every dynamic symbol that a library defines starts with its prefix: nothing internal leaks.
#   check-exports.sh LIB [PREFIX [MINIMUM]]   (mk_ and 20 for libmkhost)
set -eu
lib=$1
prefix=${2:-mk_}
min=${3:-20}
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^MKHOST_' || true)
bad=$(printf '%s\n' "$syms" | grep -v "^$prefix" | grep -v '^$' || true)
internal=$(printf '%s\n' "$syms" | grep '^mk__' || true)
if [ -n "$bad$internal" ]; then
	echo "symbols that should not be exported:"; printf '%s\n' $bad $internal
	exit 1
fi
n=$(printf '%s\n' "$syms" | grep -c "^$prefix")
[ "$n" -ge "$min" ] || { echo "only $n $prefix symbols exported"; exit 1; }
echo "ok: $n symbols, all public"

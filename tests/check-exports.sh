#!/bin/sh
# Every dynamic symbol that libmkhost defines starts with mk_: nothing internal leaks.
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^MKHOST_' || true)
bad=$(printf '%s\n' "$syms" | grep -v '^mk_' | grep -v '^$' || true)
internal=$(printf '%s\n' "$syms" | grep '^mk__' || true)
if [ -n "$bad$internal" ]; then
	echo "symbols that should not be exported:"; printf '%s\n' $bad $internal
	exit 1
fi
n=$(printf '%s\n' "$syms" | grep -c '^mk_')
[ "$n" -ge 20 ] || { echo "only $n mk_ symbols exported"; exit 1; }
echo "ok: $n symbols, all public"

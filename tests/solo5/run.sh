#!/bin/sh
# Run one of the Solo5 test unikernels and check what it printed and how it ended.
#   run.sh hello|time|absent|block|pair DIR   (DIR holds the solo5-* programs)
set -u
case_name=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# run PROGRAM ARGS...: sets $status, $out (stdout) and $err (stderr)
run() {
	prog=$dir/solo5-$1
	shift
	timeout 60 "$prog" "$@" >"$tmp/out" 2>"$tmp/err"
	status=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

expect() { # expect STATUS TEXT-IN-STDOUT DESCRIPTION
	if [ "$status" -ne "$1" ]; then
		fail "$3: exit status $status, expected $1 (stdout: $out; stderr: $err)"
	elif ! printf '%s\n' "$out" | grep -qF -- "$2"; then
		fail "$3: stdout lacks '$2' (stdout: $out; stderr: $err)"
	fi
}

expect_err() { # expect_err STATUS TEXT-IN-STDERR DESCRIPTION
	if [ "$status" -ne "$1" ]; then
		fail "$3: exit status $status, expected $1 (stderr: $err)"
	elif ! printf '%s\n' "$err" | grep -qF -- "$2"; then
		fail "$3: stderr lacks '$2' (stderr: $err)"
	fi
}

case $case_name in
hello)
	run hello
	expect 0 "Hello, world" "no arguments"
	expect 0 "cmdline: []" "no arguments: empty cmdline"
	expect 0 "heap: 512 MiB" "the default heap is the tenders' 512 MB"
	run hello --mem=16 -- a b  c
	expect 0 "cmdline: [a b c]" "the arguments after -- are the cmdline"
	expect 0 "heap: 16 MiB" "--mem sets the heap size"
	run hello -- --solo5:quiet --solo5:debug x --solo5:quiet
	expect 0 "cmdline: [x --solo5:quiet]" "Solo5's leading flags are taken out"
	run hello --mem=8 one two
	expect 0 "cmdline: [one two]" "the first argument that is not an option starts the cmdline"
	run hello -- -- --net:x=y
	expect 0 "cmdline: [-- --net:x=y]" "after --, nothing is an option"
	run hello -- return 3
	expect 3 "Hello" "returning from solo5_app_main"
	run hello -- exit 7
	expect 7 "Hello" "solo5_exit"
	run hello -- exit 0
	expect 0 "Hello" "solo5_exit(0)"
	run hello -- abort
	expect 255 "Hello" "solo5_abort ends with SOLO5_EXIT_ABORT"
	expect_err 255 "solo5_abort() called" "solo5_abort says so"
	run hello --frobnicate
	expect_err 1 "invalid option '--frobnicate'" "an unknown option"
	[ -z "$out" ] || fail "an unknown option: the program must not run ($out)"
	for bad in --mem= --mem=0 --mem=x --mem=12k --mem=99999999999999999999; do
		run hello "$bad"
		expect_err 1 "malformed '$bad'" "a malformed $bad"
	done
	run hello --net:service0
	[ "$status" -eq 1 ] || fail "a malformed device option: exit status $status"
	run hello --help
	expect 0 "--mem=MB" "--help shows --mem"
	expect 0 "--net:NAME=IFACE" "--help shows the device options"
	[ "${out#*Hello}" = "$out" ] || fail "--help must not run the program"
	;;
time)
	run time
	expect 0 "time: ok" "clocks and yield deadlines"
	wall=$(printf '%s\n' "$out" | sed -n 's/^wall: //p')
	now=$(date +%s)
	if [ -z "$wall" ] || [ $((now - wall)) -gt 10 ] || [ $((wall - now)) -gt 10 ]; then
		fail "the wall clock ($wall) is the host's ($now)"
	fi
	;;
absent)
	run absent
	expect 0 "absent: ok" "acquiring devices that were not given"
	run absent --block:storage="$tmp/no-such-file"
	expect_err 1 "storage" "a block file that does not exist stops the program before it runs"
	[ -z "$out" ] || fail "a missing block file: the program must not run ($out)"
	run absent --net:service0=mkhost-no-such-tap
	expect_err 1 "service0" "a TAP that does not exist stops the program before it runs"
	[ -z "$out" ] || fail "a missing TAP: the program must not run ($out)"
	;;
block)
	truncate -s 65536 "$tmp/disk.img"
	run block --block:storage="$tmp/disk.img" -- 65536 512
	expect 0 "block: ok" "512-byte sectors"
	# sector 3 holds 7 * 3 + 1 = 22, sectors 1 and 2 0xa5 and 0x5a, the last 7 * 127 + 1 = 0x7a
	bytes=$(od -An -tx1 -j 512 -N 1 "$tmp/disk.img"; od -An -tx1 -j 1024 -N 1 "$tmp/disk.img"
	        od -An -tx1 -j 1536 -N 1 "$tmp/disk.img"; od -An -tx1 -j 65535 -N 1 "$tmp/disk.img")
	[ "$(echo $bytes)" = "a5 5a 16 7a" ] || fail "the file holds what was written: $(echo $bytes)"
	truncate -s 65536 "$tmp/big.img"
	run block --block:storage="$tmp/big.img" --block-sector-size:storage=4096 -- 65536 4096
	expect 0 "block: ok" "4096-byte sectors"
	truncate -s 1000 "$tmp/odd.img"
	run block --block:storage="$tmp/odd.img" -- 1000 512
	expect_err 1 "storage" "a file that is not whole sectors stops the program before it runs"
	;;
pair)
	run pair --net:a=hub:lan --net:b=hub:lan
	expect 0 "pair: ok" "two devices on a hub"
	run pair --net:a=hub:lan --net:b=hub:lan --net-fault:b=delay=5 --net-pcap:a="$tmp/a.pcap"
	expect 0 "pair: ok" "two devices on a hub, one delayed, one captured"
	[ -s "$tmp/a.pcap" ] || fail "the capture of a was written when the program ended"
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
[ "$fails" -eq 0 ] || exit 1
echo "solo5 $case_name: ok"

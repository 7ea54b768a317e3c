#!/bin/sh
# Run one of the Solo5 test unikernels and check what it printed and how it ended.
#   run.sh hello|time|absent|block|pair|console|yield|tls|manifest|flood DIR   (DIR holds the programs)
# The programs are DIR/solo5-NAME (built against the pkg-config module), or DIR/uk-NAME with
# SOLO5_PREFIX=uk- (built by mkhost-solo5-cc, each with its own C library). SOLO5_WRAPPER runs
# each program under a command, e.g. valgrind (meson test --suite solo5-valgrind does).
set -u
case_name=$1
dir=$2
prefix=${SOLO5_PREFIX:-solo5-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# run PROGRAM ARGS...: sets $status, $out (stdout) and $err (stderr)
run() {
	prog=$dir/$prefix$1
	shift
	# shellcheck disable=SC2086 # the wrapper's words
	timeout 300 ${SOLO5_WRAPPER:-} "$prog" "$@" >"$tmp/out" 2>"$tmp/err"
	status=$?
	out=$(cat "$tmp/out")
	# mkhost's one-line notice under valgrind (epoll by default there) is not the program's
	err=$(sed '/^mkhost: under valgrind, using epoll/d' "$tmp/err")
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
	for bad in --solo5:Quiet --solo5:verbose --solo5=quiet --SOLO5:debug; do
		run hello -- "$bad" x
		expect_err 1 "'$bad' is not one of the Solo5 flags" "a look-alike of a Solo5 flag"
		[ -z "$out" ] || fail "$bad: the unikernel must not run ($out)"
	done
	run hello --sandbox=1
	expect_err 1 "did you mean --sandbox (it takes no value)?" "a look-alike of --sandbox"
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
	run hello --busy-poll=50 --stack-size=16M --backend=epoll -- tuned
	expect 0 "cmdline: [tuned]" "the tuning options are taken, not passed on"
	for opt in "--busy-poll=" "--stack-size=" "--backend="; do
		run hello "${opt}bad"
		expect_err 1 "'${opt}bad'" "a bad $opt is refused, quoted"
		[ -z "$out" ] || fail "a bad $opt: the program must not run ($out)"
	done
	run hello --help
	for opt in --busy-poll=US --stack-size=SIZE --backend=NAME; do
		expect 0 "$opt" "--help lists $opt"
	done
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
	# the bad images: Solo5's sentence first, then mkhost's with the fix; the program never runs
	: >"$tmp/empty.img"
	truncate -s 100 "$tmp/small.img"
	truncate -s 1000 "$tmp/odd.img"
	truncate -s 6144 "$tmp/odd4k.img"
	for bad in "empty.img 512 Backing storage must be at least 1 block (512 bytes) in size" \
	           "small.img 512 Backing storage size must be block aligned (512 bytes)" \
	           "odd.img 512 Backing storage size must be block aligned (512 bytes)" \
	           "odd4k.img 4096 Backing storage size must be block aligned (4096 bytes)"; do
		# shellcheck disable=SC2086 # the words of the case
		set -- $bad
		img=$1 sector=$2
		shift 2
		run block --block:storage="$tmp/$img" --block-sector-size:storage="$sector"
		expect_err 1 "storage: $*" "$img with $sector-byte sectors, in Solo5's words"
		expect_err 1 "block device 'storage'" "$img with $sector-byte sectors, then mkhost's fix"
		case $err in "mkhost: storage: Backing"*) ;; *) fail "$img: Solo5's sentence comes first ($err)" ;; esac
		[ -z "$out" ] || fail "$img: the program must not run ($out)"
	done
	for bad in 1000 256 0 x; do
		run block --block:storage="$tmp/disk.img" --block-sector-size:storage=$bad
		expect_err 1 "Block size must be a multiple of 2 greater than or equal 512" \
			"sector size $bad, in Solo5's words"
		expect_err 1 "a sector size must be a power of two" "sector size $bad, then mkhost's fix"
	done
	;;
pair)
	run pair --net:a=hub:lan --net:b=hub:lan
	expect 0 "pair: ok" "two devices on a hub"
	run pair --net:a=hub:lan --net:b=hub:lan --net-fault:b=delay=5 --net-pcap:a="$tmp/a.pcap"
	expect 0 "pair: ok" "two devices on a hub, one delayed, one captured"
	[ -s "$tmp/a.pcap" ] || fail "the capture of a was written when the program ended"
	;;
console)
	run console
	expect 0 "libc: ok" "its own memcpy, memset, printf and malloc, at -O2"
	run console -- a  b
	expect 0 "cmdline: [a b]" "the cmdline reaches the unikernel"
	run console -- exit 7
	expect_err 7 "Solo5: solo5_exit(7) called" "solo5_exit says so, in Solo5's words"
	run console -- --solo5:quiet exit 7
	[ "$status" -eq 7 ] || fail "--solo5:quiet exit 7: exit status $status"
	case $err in *Solo5:*) fail "--solo5:quiet: Solo5's info lines are not printed ($err)" ;; esac
	run console -- --solo5:quiet --solo5:debug exit 7
	expect_err 7 "Solo5: solo5_exit(7) called" "the last of --solo5:quiet and --solo5:debug wins"
	run console -- abort
	expect_err 255 "Solo5: solo5_abort() called" "solo5_abort: Solo5's line, status 255"
	run console -- smash 64
	expect_err 255 "Solo5: ABORT: Stack corruption detected" "a smashed stack: the layer's check"
	case $out in *"smash: wrote"*) fail "a smashed stack: the function returned ($out)" ;; esac
	run ownssp -- smash 64
	expect 77 "my own __stack_chk_fail" "a smashed stack: the unikernel's own check"
	run console -- null
	[ "$status" -eq 139 ] || fail "a NULL dereference dies of SIGSEGV (139), not $status ($err)"
	case $out in *survived*) fail "a NULL dereference went on" ;; esac
	run console -- ud2
	[ "$status" -eq 132 ] || fail "an invalid instruction dies of SIGILL (132), not $status ($err)"
	run console -- dup
	expect 0 "dup: " "a raw system call runs without --sandbox"
	# (not under a wrapper such as valgrind, whose own system calls the sandbox would refuse)
	if [ -z "${SOLO5_WRAPPER:-}" ]; then
		run console --sandbox -- dup
		expect_err 159 "forbidden system call 32 (dup)" "with --sandbox (spt's seccomp) a raw dup dies of SIGSYS"
		case $out in *"dup: "*) fail "--sandbox: the raw system call returned ($out)" ;; esac
	fi
	;;
manifest)
	# uk-mft is console linked with manifest.json's manifest: service0 (net), storage (block)
	truncate -s 4096 "$tmp/disk.img"
	run mft --net:service0=hub:lan --block:storage="$tmp/disk.img"
	expect 0 "libc: ok" "the devices of the manifest, all given"
	run mft --net:service0=hub:lan
	expect_err 1 "Device 'storage' of type BLOCK_BASIC declared but not attached" \
		"a device of the manifest missing from the command line"
	expect_err 1 "give it with --block:storage=FILE" "a missing device: mkhost's fix"
	[ -z "$out" ] || fail "a missing device: the program must not run ($out)"
	run mft --net:service0=hub:lan --block:storage="$tmp/disk.img" --net:other=hub:lan
	expect_err 1 "Resource not declared in manifest: 'other'" "a device the manifest lacks"
	expect_err 1 "drop --net:other" "a device the manifest lacks: mkhost's fix"
	[ -z "$out" ] || fail "an undeclared device: the program must not run ($out)"
	run mft --block:service0="$tmp/disk.img" --net:storage=hub:lan
	expect_err 1 "Resource not declared in manifest: 'service0'" "a device of the wrong kind"
	run console --net:anything=hub:lan --block:disk="$tmp/disk.img"
	expect 0 "libc: ok" "without a manifest, every device given is attached, as before"
	;;
flood)
	# on hub:, without root: the unikernel floods its own service0 from a second device, with
	# replies checked byte by byte against the 0xdeadbeef pattern
	hub="--net:service0=hub:lan --net:client=hub:lan"
	# shellcheck disable=SC2086
	run net $hub -- 10.0.0.2 flood=100000:56:1
	expect 0 "flood: 100000 sent, 100000 received, 0 corrupted" "100,000 pings as ping -f sends them"
	# shellcheck disable=SC2086
	run net $hub -- 10.0.0.2 flood=100000:56:32
	expect 0 "flood: 100000 sent, 100000 received, 0 corrupted" "100,000 pings, 32 in flight (-l 32)"
	run net --net:service0=hub:lan,mtu=9000 --net:client=hub:lan,mtu=9000 -- 10.0.0.2 flood=10000:8972:8
	expect 0 "flood: 10000 sent, 10000 received, 0 corrupted" "MTU 9000: frames of 9014 bytes"
	# shellcheck disable=SC2086
	run net $hub --net-fault:client=drop=1%,seed=7 -- 10.0.0.2 flood=1000:56:1
	[ "$status" -eq 1 ] || fail "a lossy link: the flood reports its loss (status $status: $out)"
	;;
tls)
	run tls --net:a=hub:lan
	expect 0 "tls: ok" "two TLS blocks of its own, switched, across yields"
	expect 0 "tls: constructor ran" "a constructor calls solo5_* before solo5_app_main"
	run tls -- fault
	[ "$status" -eq 139 ] || fail "reading %fs:0 with no thread pointer dies of SIGSEGV, not $status ($out)"
	case $out in *"no fault"*) fail "the unikernel started with a thread pointer ($out)" ;; esac
	;;
yield)
	run yield
	expect 0 "yield: ok" "globals and FPU control state across 1,000 yields"
	run yield --net:a=hub:lan
	expect 0 "yield: ok" "the same with a device watcher running in between"
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
[ "$fails" -eq 0 ] || exit 1
echo "solo5 $case_name: ok"

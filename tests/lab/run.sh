#!/usr/bin/env bash
# The lab suite: mkhost-lab (scripts/mkhost-lab, as build/mkhost-lab) as user nobody, through a
# user namespace. Started as root, a case runs itself again as nobody (as-nobody: with a private
# 0666 /dev/net/tun where the machine's is stricter); the *-root cases stay root and use
# `ip netns`.
#   run.sh CASE BUILD-DIR
# shellcheck disable=SC2016 # (the commands in single quotes are expanded inside the lab)
set -euo pipefail
case_name=$1
build=$2
here=$(dirname "$(readlink -f -- "$0")")
lab=$build/mkhost-lab
ping_serve=$build/examples/ping-serve
devices=$build/tests/lab/lab-devices

if [[ $case_name == *-root ]]; then
	if (($(id -u) != 0)); then
		echo "SKIP: the $case_name case is the root path (ip netns); run the suite as root"
		exit 77
	fi
elif (($(id -u) == 0)); then
	exec "$here/as-nobody" "$0" "$@"
fi

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
# mkhost-lab's own files go here, to see that it leaves none behind.
mkdir "$tmp/tmpdir"
export TMPDIR=$tmp/tmpdir

fail() {
	echo "FAIL ($case_name): $*"
	echo "--- stdout:"
	cat "$tmp/out" 2>/dev/null || true
	echo "--- stderr:"
	cat "$tmp/err" 2>/dev/null || true
	exit 1
}

# lab ARGS...: run mkhost-lab, at most 60 s; sets $status; output in $tmp/out and $tmp/err.
lab() {
	status=0
	timeout -k 5 60 "$lab" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || status=$?
}
expect_status() { ((status == $1)) || fail "exit status $status, expected $1"; }
expect_out() { grep -qF -- "$1" "$tmp/out" || fail "stdout lacks '$1'"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks '$1'"; }

# Where this machine allows no namespace, say why (mkhost-lab's sentence); under CI=true fail.
if [[ $case_name != refusal && $case_name != suite-refused && $case_name != *-root ]]; then
	probe=0
	"$lab" --refused 77 -- true 2>"$tmp/probe" || probe=$?
	if ((probe == 77)); then
		if [[ ${CI:-} == true ]]; then
			echo "FAIL (CI=true: the lab must work here): $(cat "$tmp/probe")"
			exit 1
		fi
		echo "SKIP: $(cat "$tmp/probe")"
		exit 77
	fi
	((probe == 0)) || fail "mkhost-lab -- true: exit $probe: $(cat "$tmp/probe")"
fi

# Nothing of a lab left: no process whose command line names $tmp, no file in TMPDIR, and as
# root no namespace named mklab-*.
nothing_left() {
	local p left=() words=()
	for p in /proc/[0-9]*; do # (read by builtins: a grep would find itself)
		mapfile -d '' words <"$p/cmdline" 2>/dev/null || continue
		[[ "${words[*]}" != *"$tmp/"* ]] || left+=("${p#/proc/}: ${words[*]}")
	done
	((${#left[@]} == 0)) || fail "processes left behind: ${left[*]}"
	[[ -z $(ls -A "$tmp/tmpdir") ]] || fail "files left behind in TMPDIR: $(ls -A "$tmp/tmpdir")"
	if (($(id -u) == 0)) && ip netns list | grep -q "^$1\b"; then
		fail "namespace $1 left behind"
	fi
}

# Run a lab in the background in a process group of its own (set -m: as a terminal's foreground
# job, with SIGINT at its default action), with a client that says when it runs and then waits;
# then stop it with SIGNAL sent to TARGET ("group": the whole group, as Ctrl-C does; "lab":
# mkhost-lab alone; "none": let --timeout do it).
interrupted() { # SIGNAL TARGET EXPECTED-STATUS [LAB OPTIONS...]
	local sig=$1 target=$2 expected=$3 pid i
	shift 3
	ln -s "$ping_serve" "$tmp/ping-serve"
	ln -s "$(command -v sleep)" "$tmp/sleep"
	set -m
	"$lab" --tap tap0=10.0.0.1/24 "$@" \
		--then "ping -c 2 -i 0.2 -q 10.0.0.2 && echo running >$tmp/ready && exec $tmp/sleep 30" \
		-- "$tmp/ping-serve" --net:service=tap0 -- 10.0.0.2 >"$tmp/out" 2>"$tmp/err" </dev/null &
	pid=$!
	set +m
	for ((i = 0; i < 1000; i++)); do # the client runs: PROGRAM answered it
		[[ -f $tmp/ready ]] && break
		kill -0 "$pid" 2>/dev/null || fail "the lab ended before its client ran"
		sleep 0.01
	done
	[[ -f $tmp/ready ]] || fail "the client did not run within 10 s"
	if [[ $target == group ]]; then
		kill "-$sig" -- "-$pid"
	elif [[ $target == lab ]]; then
		kill "-$sig" "$pid"
	fi
	status=0
	wait "$pid" || status=$?
	expect_status "$expected"
	expect_out "ping-serve: answered 2 echo requests" # it was stopped cleanly, by SIGTERM
	nothing_left "mklab-$pid"
}

case $case_name in
ping | ping-root)
	# With a deadline (-w), ping waits for its 20 replies and exits 0 only once they came;
	# without one, it stops waiting twice its longest round trip after its last request, and
	# under load a late reply went uncounted. While it waits it may send more: ping-serve
	# answered at least the 20 and at most what ping sent.
	lab --tap tap0=10.0.0.1/24 --then 'ping -c 20 -i 0.01 -w 30 10.0.0.2' \
		-- "$ping_serve" --net:service=tap0 -- 10.0.0.2
	expect_status 0
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted, [0-9]* received.*/\1/p' "$tmp/out")
	answered=$(sed -n 's/^ping-serve: answered \([0-9]*\) echo requests.*/\1/p' "$tmp/out")
	((${sent:-0} >= 20 && ${answered:-0} >= 20 && answered <= sent)) ||
		fail "ping sent ${sent:-no} requests and ping-serve answered ${answered:-no}: at least 20 each, and no more answered than sent"
	;;
client-status)
	lab --tap tap0=10.0.0.1/24 --then 'ping -c 1 -q 10.0.0.2 && exit 7' \
		-- "$ping_serve" --net:service=tap0 -- 10.0.0.2
	expect_status 7
	expect_out "ping-serve: answered 1 echo requests"
	lab --tap tap0=10.0.0.1/24 --then 'ping -c 2 -W 1 -q 10.0.0.9' \
		-- "$ping_serve" --net:service=tap0 -- 10.0.0.2
	expect_status 1 # ping's own status: nobody answers for 10.0.0.9
	;;
early-exit)
	# It names the wrong interface: it exits at once, before attaching tap0.
	lab --tap tap0=10.0.0.1/24 --then 'echo the client ran' \
		-- "$ping_serve" --net:service=tap9 -- 10.0.0.2
	expect_status 125
	expect_err "mkhost-lab: PROGRAM $ping_serve exited with status 1 before attaching tap0; the client was not run"
	grep -q "the client ran" "$tmp/out" && fail "the client ran"
	# Without a client, PROGRAM's own status, named.
	lab --tap tap0 -- sh -c 'exit 3'
	expect_status 3
	expect_err "mkhost-lab: PROGRAM sh exited with status 3 before attaching tap0"
	lab -- sh -c 'exit 4'
	expect_status 4
	expect_err "mkhost-lab: PROGRAM sh exited with status 4"
	lab -- true
	expect_status 0
	[[ ! -s $tmp/err ]] || fail "PROGRAM succeeded and stderr says something"
	;;
ctrl-c | ctrl-c-root)
	interrupted INT group 130
	;;
timeout)
	interrupted none none 124 --timeout 4
	expect_err "mkhost-lab: timed out after 4 s (--timeout): stopping everything"
	rm -f "$tmp/ready" "$tmp/ping-serve" "$tmp/sleep"
	interrupted TERM lab 143 # as a CI job is cancelled
	;;
two-taps)
	# PROGRAM takes its time before it attaches: the client runs only once both TAPs are.
	lab --tap tap0=10.0.0.1/24 --tap tap1=10.1.0.1/24,mtu=9000 \
		--then 'ip -o link show dev tap0; ip -o link show dev tap1' \
		-- sh -c 'sleep 0.5 && exec "$0" "$@"' "$devices" --net:a=tap0 --net:b=tap1 -- a b
	expect_status 0
	expect_out "a: mtu 1500"
	expect_out "b: mtu 9000"
	grep -q "^[0-9]*: tap1: .*LOWER_UP.* mtu 9000 .*state UP" "$tmp/out" ||
		fail "tap1 is not attached and up with MTU 9000"
	grep -q "^[0-9]*: tap0: .*LOWER_UP.* mtu 1500 .*state UP" "$tmp/out" ||
		fail "tap0 is not attached and up with MTU 1500"
	;;
pcap)
	# (-w: as in the ping case, ping waits for its 5 replies, and may send more meanwhile)
	lab --pcap "$tmp/cap" --tap tap0=10.0.0.1/24 --then 'ping -c 5 -i 0.05 -w 30 -q 10.0.0.2' \
		-- "$ping_serve" --net:service=tap0 -- 10.0.0.2
	expect_status 0
	[[ -f $tmp/cap/tap0.pcap ]] || fail "no capture $tmp/cap/tap0.pcap"
	requests=$(tshark -r "$tmp/cap/tap0.pcap" -Y 'icmp.type == 8 && ip.dst == 10.0.0.2' 2>/dev/null | wc -l)
	replies=$(tshark -r "$tmp/cap/tap0.pcap" -Y 'icmp.type == 0 && ip.src == 10.0.0.2' 2>/dev/null | wc -l)
	((requests >= 5 && replies == requests)) ||
		fail "the capture holds $requests echo requests and $replies replies, expected at least 5 and as many replies"
	;;
safety)
	# Inside: loopback and the TAP only, no default route, IPv6 off; with --ipv6, IPv6 on.
	check='ip -o link show | cut -d: -f2 | tr -d " " | tr "\n" " "; echo;
		echo "v4 default: [$(ip -4 route show default)]";
		echo "v6 off: $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)"; echo "lab: $MKHOST_LAB"'
	lab --tap tap0=10.0.0.1/24 --then "$check" -- "$devices" --net:a=tap0 -- a
	expect_status 0
	expect_out "lo tap0 "
	expect_out "v4 default: []"
	expect_out "v6 off: 1"
	expect_out "lab: mklab-"
	lab --ipv6 --tap tap0=fd00::1/64 --then "$check; ip -6 addr show dev tap0" \
		-- "$devices" --net:a=tap0 -- a
	expect_status 0
	expect_out "v6 off: 0"
	expect_out "inet6 fd00::1/64"
	lab --tap tap0=fd00::1/64 -- true
	expect_status 2
	expect_err "is an IPv6 address and IPv6 is off; add --ipv6"
	;;
refusal)
	# user.max_user_namespaces is per user namespace: 0 in one made for this test, then the
	# lab cannot make its own.
	status=0
	unshare --user --map-root-user -- sh -c \
		'echo 0 >/proc/sys/user/max_user_namespaces && exec "$0" --then true -- true' \
		"$lab" >"$tmp/out" 2>"$tmp/err" || status=$?
	expect_status 125
	expect_err "mkhost-lab: cannot make a private network as uid 0: user namespaces are off (user.max_user_namespaces is 0); fix: sudo sysctl -w user.max_user_namespaces=10000, or run mkhost-lab as root."
	expect_err "test over unix:, hub: or slirp links"
	status=0
	unshare --user --map-root-user -- sh -c \
		'echo 0 >/proc/sys/user/max_user_namespaces && exec "$0" --refused 77 -- true' \
		"$lab" >"$tmp/out" 2>"$tmp/err" || status=$?
	expect_status 77
	;;
refusal-tun-root)
	# As nobody where /dev/net/tun is 0600 (a private node of that mode, made as root).
	status=0
	unshare --mount --propagation private -- bash -c '
		mount -t tmpfs -o mode=0755,size=16k tmpfs /dev/net &&
		mknod -m 0600 /dev/net/tun c 10 200 &&
		exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- "$0" -- true' \
		"$lab" >"$tmp/out" 2>"$tmp/err" || status=$?
	expect_status 125
	expect_err "mkhost-lab: cannot make a private network as uid 65534: /dev/net/tun is mode 600 (owner root), so this user cannot open it; fix: sudo chmod 0666 /dev/net/tun"
	;;
bad-args)
	bad() { # EXPECTED-STATUS TEXT ARGS...: a refused command line
		local want=$1 text=$2
		shift 2
		lab "$@"
		expect_status "$want"
		expect_err "$text"
		[[ ! -s $tmp/out ]] || fail "mkhost-lab $*: something ran"
	}
	bad 2 "'tap0/x' is not an interface name" --tap tap0/x -- true
	bad 2 "'averyveryverylongname' is not an interface name" --tap averyveryverylongname -- true
	bad 2 "tap0 is given twice" --tap tap0 --tap tap0 -- true
	bad 2 "'10.0.0.300/24' is not an IPv4 ADDRESS/PREFIX" --tap tap0=10.0.0.300/24 -- true
	bad 2 "'10.0.0.1' is not an IPv4 ADDRESS/PREFIX" --tap tap0=10.0.0.1 -- true
	bad 2 "mtu '67' is not a number from 68 to 65521" --tap tap0,mtu=67 -- true
	bad 2 "unknown option 'speed=9'" --tap tap0,speed=9 -- true
	bad 2 "--timeout '0' is not a number of seconds above 0" --timeout 0 -- true
	bad 2 "--then needs a value" --then
	bad 2 "unknown argument '--tpa'" --tpa tap0 -- true
	bad 2 "no PROGRAM: give it after --" --tap tap0
	bad 2 "--inside is for mkhost-lab's own second run" --inside --tap tap0 -- true
	bad 127 "PROGRAM './no-such-program' not found" -- ./no-such-program
	bad 126 "PROGRAM '$tmp' is not an executable file" -- "$tmp"
	nothing_left none
	;;
suite-as-nobody)
	# A TAP suite run by a plain user: it runs itself through mkhost-lab, and passes.
	status=0
	timeout -k 5 100 "$build/tests/test_ping" >"$tmp/out" 2>"$tmp/err" || status=$?
	expect_status 0
	grep -q "100%: Checks: [1-9]" "$tmp/out" "$tmp/err" || fail "the suite ran no test"
	;;
suite-refused)
	# Where no namespace can be made, the suite skips with mkhost-lab's sentence; under CI=true
	# that is a failure. (Inside a user namespace with its capabilities dropped, as a plain user.)
	for ci in false true; do
		status=0
		CI=$ci unshare --user --map-root-user -- sh -c \
			'echo 0 >/proc/sys/user/max_user_namespaces &&
			 exec setpriv --bounding-set=-all --inh-caps=-all --securebits=+noroot,+noroot_locked -- "$0"' \
			"$build/tests/test_ping" >"$tmp/out" 2>"$tmp/err" || status=$?
		if [[ $ci == true ]]; then expect_status 1; else expect_status 77; fi
		expect_err "user namespaces are off (user.max_user_namespaces is 0)"
	done
	;;
*)
	echo "run.sh: unknown case '$case_name'" >&2
	exit 2
	;;
esac
echo "ok: $case_name"

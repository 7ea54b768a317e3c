#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/). Run it again after
changing it; libFuzzer adds what it finds on top of these (scripts/fuzz keeps that out of git)."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)

# ---- args: arguments separated by NUL bytes -------------------------------------------------
args = {
    'tap': ['--net:service=tap0'],
    'fd': ['--net:service=@3'],
    'mac': ['--net:service=tap0', '--net-mac:service=02:00:00:00:00:01'],
    'mac-upper': ['--net-mac:a=0A:BB:cc:dd:EE:0f', '--net:a=t'],
    'mac-multicast': ['--net:a=t', '--net-mac:a=01:00:5e:00:00:01'],
    'mac-short': ['--net:a=t', '--net-mac:a=02:00:00:00:00'],
    'mac-long': ['--net:a=t', '--net-mac:a=02:00:00:00:00:01:02'],
    'mac-twice': ['--net:a=t', '--net-mac:a=02:00:00:00:00:01', '--net-mac:a=02:00:00:00:00:02'],
    'mac-orphan': ['--net-mac:x=02:00:00:00:00:01'],
    'twice': ['--net:a=t0', '--net:a=t1', 'prog-arg'],
    'dashdash': ['x', '--net:a=t', '--', '--net:b=u', '--', 'y'],
    'help': ['--help', '--net:a=t'],
    'unknown': ['--net-foo:a=b'],
    'no-name': ['--net:=t'],
    'no-eq': ['--net:a'],
    'empty-value': ['--net:a='],
    'bad-fd': ['--net:a=@x'],
    'big-fd': ['--net:a=@99999999999'],
    'neg-fd': ['--net:a=@-1'],
    'block': ['--block:disk=/tmp/d.img', '--block-sector-size:disk=4096'],
    'block-bad-size': ['--block:d=f', '--block-sector-size:d=1000'],
    'block-orphan': ['--block-sector-size:d=512'],
    'block-twice': ['--block:d=f', '--block:d=g'],
    'unix': ['--net:a=unix:/tmp/x.sock,mtu=9000'],
    'hub': ['--net:a=hub:/tmp/h'],
    'many': ['--net:n%d=tap%d' % (i, i) for i in range(20)] + ['--net-mac:n3=02:00:00:00:00:03'],
    'colon-name': ['--net:a:b=c'],
    'eq-in-value': ['--net:a=b=c'],
    'sandbox': ['--sandbox', '--net:a=t', '--', '--sandbox'],
    'pcap': ['--net:a=t', '--net-pcap:a=/tmp/a.pcap'],
    'pcap-orphan': ['--net-pcap:a=/tmp/a.pcap'],
    'fault': ['--net:a=t', '--net-fault:a=drop=0.1,dup=5%,corrupt=0.01,reorder=1%,delay=20,seed=42'],
    'fault-bad': ['--net:a=t', '--net-fault:a=drop=150%,delay=-1'],
    'fault-empty-item': ['--net:a=t', '--net-fault:a=drop=0.1,,seed='],
    'fault-twice': ['--net:a=t', '--net-fault:a=drop=1', '--net-fault:a=dup=1'],
    'fault-big': ['--net:a=t', '--net-fault:a=delay=99999999999999999999,seed=18446744073709551616'],
}
for name, a in args.items():
    put('args', name, b'\0'.join(s.encode() for s in a))

# ---- ping: one received Ethernet frame, for host 02:00:00:00:00:02 / 10.0.0.2 --------------
MAC = bytes([2, 0, 0, 0, 0, 2])
PEER = bytes([2, 0, 0, 0, 0, 1])
BCAST = b'\xff' * 6
IP = bytes([10, 0, 0, 2])
PEER_IP = bytes([10, 0, 0, 1])

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def eth(dst, src, typ, payload):
    return dst + src + struct.pack('!H', typ) + payload

def arp(oper=1, sha=PEER, spa=PEER_IP, tpa=IP):
    return struct.pack('!HHBBH', 1, 0x0800, 6, 4, oper) + sha + spa + b'\0' * 6 + tpa

def ipv4(payload, src=PEER_IP, dst=IP, proto=1, frag=0, options=b''):
    ihl = 5 + len(options) // 4
    h = struct.pack('!BBHHHBBH', 0x40 | ihl, 0, ihl * 4 + len(payload), 0x1234, frag, 64,
                    proto, 0) + src + dst + options
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload

def echo(data=b'abcdefgh' * 7, typ=8):
    m = struct.pack('!BBHHH', typ, 0, 0, 0x4242, 1) + data
    return m[:2] + struct.pack('!H', csum(m)) + m[4:]

put('ping', 'arp-request', eth(BCAST, PEER, 0x0806, arp()))
put('ping', 'arp-request-padded', eth(BCAST, PEER, 0x0806, arp()) + b'\0' * 18)
put('ping', 'arp-probe', eth(BCAST, PEER, 0x0806, arp(spa=b'\0' * 4)))
put('ping', 'arp-other-ip', eth(BCAST, PEER, 0x0806, arp(tpa=bytes([10, 0, 0, 9]))))
put('ping', 'arp-reply', eth(MAC, PEER, 0x0806, arp(oper=2)))
put('ping', 'arp-short', eth(BCAST, PEER, 0x0806, arp())[:41])
put('ping', 'echo', eth(MAC, PEER, 0x0800, ipv4(echo())))
put('ping', 'echo-empty', eth(MAC, PEER, 0x0800, ipv4(echo(b''))))
put('ping', 'echo-odd', eth(MAC, PEER, 0x0800, ipv4(echo(b'x' * 33))))
put('ping', 'echo-big', eth(MAC, PEER, 0x0800, ipv4(echo(bytes(range(256)) * 5 + b'z' * 172))))
put('ping', 'echo-options', eth(MAC, PEER, 0x0800, ipv4(echo(), options=b'\x07\x07\x04' + b'\0' * 5)))
put('ping', 'echo-padded', eth(MAC, PEER, 0x0800, ipv4(echo(b''))) + b'\0' * 20)
put('ping', 'echo-broadcast-dst', eth(BCAST, PEER, 0x0800, ipv4(echo())))
put('ping', 'echo-fragment', eth(MAC, PEER, 0x0800, ipv4(echo(), frag=0x2000)))
put('ping', 'echo-from-broadcast', eth(MAC, PEER, 0x0800, ipv4(echo(), src=b'\xff' * 4)))
put('ping', 'echo-from-zero', eth(MAC, PEER, 0x0800, ipv4(echo(), src=b'\0' * 4)))
put('ping', 'echo-reply', eth(MAC, PEER, 0x0800, ipv4(echo(typ=0))))
put('ping', 'echo-bad-csum', eth(MAC, PEER, 0x0800, ipv4(echo())[:-1] + b'\x01'))
put('ping', 'echo-truncated', eth(MAC, PEER, 0x0800, ipv4(echo()))[:50])
put('ping', 'udp', eth(MAC, PEER, 0x0800, ipv4(b'\0' * 16, proto=17)))
put('ping', 'multicast-src', eth(MAC, b'\x01' + PEER[1:], 0x0800, ipv4(echo())))
put('ping', 'runt', eth(MAC, PEER, 0x0800, b'')[:13])

# ---- frame: MTU (2 bytes), then calls: op, alloc (2), flags, ... (see fuzz_frame.c) -------
def mtu(m):
    return struct.pack('!H', m)
put('frame', 'mtu1500-reads', mtu(1500) + bytes([0, 0x05, 0xf0, 0x02, 2]) + bytes([1, 0x0b, 0xe0, 0x02, 3, 1, 0x01, 0x00]))
put('frame', 'mtu1500-writes', mtu(1500) + bytes([2, 0x05, 0xea, 0x42, 7, 0x3c, 3, 3, 0x05, 0xea, 0x02, 3]))
put('frame', 'mtu0', mtu(0) + bytes([0, 0, 40, 0x02, 2, 2, 0, 40, 0x42, 0, 14, 3]))
put('frame', 'mtu9000', mtu(9000) + bytes([0, 0x46, 0x50, 0x02, 2]) + bytes([4, 0x23, 0x28, 0x41, 2, 3]))
put('frame', 'wrap', mtu(1500) + bytes([0, 0x0f, 0xff, 0x62, 1, 0xff, 7, 0, 0]) + bytes([2, 0x0f, 0xff, 0x62, 4, 0, 1, 0]))
put('frame', 'null', mtu(1500) + bytes([5, 0, 64, 0x10]) + bytes([0, 0x05, 0xf0, 0x00]) + bytes([4, 0, 64, 0x01]))
put('frame', 'drops', mtu(100) + bytes([0, 0, 200, 0x02, 0, 5, 1, 9, 1, 0, 2, 3, 0x00, 0x30]))

# ---- pcap: a limit byte (bit 0: limit the file size to 64 x the next byte), that byte, then
# frames as two length bytes and the frame (see fuzz_pcap.c) ---------------------------------
def frames(*fs):
    return b''.join(struct.pack('!H', len(f)) + f for f in fs)
ETH = bytes.fromhex('ffffffffffff020000000001') + b'\x88\xb5'
put('pcap', 'empty', b'\0\0')
put('pcap', 'one-60', b'\0\0' + frames(ETH + bytes(46)))
put('pcap', 'three', b'\0\0' + frames(ETH + bytes(46), ETH + bytes(1500), ETH))
put('pcap', 'zero-len', b'\0\0' + frames(b'', ETH))
put('pcap', 'limit-mid', b'\1\3' + frames(*[ETH + bytes(46)] * 5))
put('pcap', 'limit-header', b'\1\0' + frames(ETH))

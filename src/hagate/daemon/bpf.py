"""A classic BPF receive filter for the VRRP raw sockets: junk is dropped in the kernel.

Why: under a flood (tens of thousands of frames a second) every packet the kernel queues for
us costs a wake-up share, a copy and Python work, and when the receive queue overflows the
kernel drops the real adverts with the junk (the backup then takes over from a live master).
The filter keeps only what the codec could accept: a VRID that one of the socket's instances
runs, and a VRRP length that matches the Count IPvX Addr field exactly (8 octets of header,
4 or 16 per address, plus 8 of authentication data for VRRPv2 over IPv4), as
:func:`hagate.vrrp.packet.decode` requires. Everything else (other virtual routers' adverts,
truncated or padded messages) never reaches user space; those drops are not counted (the
kernel does not count filter drops), which is why ``unknown_vrid`` stays at zero with the
filter on. Versions other than 2 and 3 pass, so that the codec counts them by reason.

IPv4 raw sockets see the packet from the IP header (the VRRP message at 4 * IHL); IPv6 raw
sockets from the VRRP message itself (length = the whole packet). Pure: this module only
builds the program; :mod:`hagate.daemon.sockets` attaches it (SO_ATTACH_FILTER).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

# Opcode parts (linux/filter.h, linux/bpf_common.h).
_LD, _LDX, _ST, _ALU, _JMP, _RET = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _MEM, _LEN, _MSH = 0x20, 0x40, 0x60, 0x80, 0xA0
_ADD, _SUB, _LSH, _RSH = 0x00, 0x10, 0x60, 0x70
_JA, _JEQ = 0x00, 0x10
_K, _X = 0x00, 0x08

ACCEPT = 0x40000  # bytes kept of an accepted packet: all of it
DROP = 0
_INSN = struct.Struct("=HBBI")  # struct sock_filter
MAX_JUMP = 255


@dataclass(frozen=True, slots=True)
class Insn:
    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def pack(self) -> bytes:
        return _INSN.pack(self.code, self.jt, self.jf, self.k)


def vrrp_filter(family: int, vrids: Iterable[int]) -> list[Insn]:
    """The program for a socket of address ``family`` (4 or 6) serving ``vrids``."""
    ids = sorted(set(vrids))
    if not ids or len(ids) > MAX_JUMP or any(not 0 <= v <= 255 for v in ids):
        raise ValueError(f"VRIDs {ids}: need 1..{MAX_JUMP} values in 0..255")
    prog: list[Insn] = []
    if family == 4:
        prog += [
            Insn(_LDX | _B | _MSH, k=0),  # X = 4 * IHL: the VRRP message's offset
            Insn(_LD | _H | _ABS, k=2),  # A = IP total length
            Insn(_ALU | _SUB | _X),  # A = VRRP length
        ]
        auth = 8  # VRRPv2 over IPv4 carries 8 octets of authentication data
        addr_shift = 2  # 4 octets per address
    else:
        prog += [
            Insn(_LDX | _W | 0x00, k=0),  # X = 0: the message starts the packet (ldx #0)
            Insn(_LD | _W | _LEN),  # A = packet length = VRRP length
        ]
        auth = 0  # RFC 9568 has none; keepalived's VRRPv2 over IPv6 neither
        addr_shift = 4  # 16 octets per address
    prog.append(Insn(_ST, k=0))  # M[0] = VRRP length
    prog.append(Insn(_LD | _B | _IND, k=1))  # A = VRID
    n = len(ids)
    for i, vrid in enumerate(ids):
        prog.append(Insn(_JMP | _JEQ | _K, jt=n - i, jf=0, k=vrid))  # to the length check
    prog.append(Insn(_RET | _K, k=DROP))  # a VRID nobody here runs
    prog += [
        Insn(_LD | _B | _IND, k=0),  # A = version / type
        Insn(_ALU | _RSH | _K, k=4),  # A = version
        Insn(_JMP | _JEQ | _K, jt=0, jf=4, k=2),
        Insn(_LD | _B | _IND, k=3),  # v2: A = count
        Insn(_ALU | _LSH | _K, k=addr_shift),
        Insn(_ALU | _ADD | _K, k=8 + auth),
        Insn(_JMP | _JA, k=4),  # to the comparison
        Insn(_JMP | _JEQ | _K, jt=0, jf=5, k=3),  # neither 2 nor 3: let the codec count it
        Insn(_LD | _B | _IND, k=3),  # v3: A = count
        Insn(_ALU | _LSH | _K, k=addr_shift),
        Insn(_ALU | _ADD | _K, k=8),
        Insn(_LDX | _W | _MEM, k=0),  # X = VRRP length
        Insn(_JMP | _JEQ | _X, jt=0, jf=1),
        Insn(_RET | _K, k=ACCEPT),
        Insn(_RET | _K, k=DROP),
    ]
    return prog


def pack(program: list[Insn]) -> bytes:
    """The instructions as the kernel's array of struct sock_filter."""
    return b"".join(i.pack() for i in program)


def run(program: list[Insn], packet: bytes) -> int:
    """Interpret ``program`` on ``packet`` as the kernel would (for tests): the return value,
    0 meaning dropped. Out-of-bounds loads drop, as in the kernel."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    mask = 0xFFFFFFFF
    while True:
        ins = program[pc]
        pc += 1
        cls, size, mode = ins.code & 0x07, ins.code & 0x18, ins.code & 0xE0
        if cls in (_LD, _LDX):
            if mode == _LEN:
                val = len(packet)
            elif mode == _MEM:
                val = mem[ins.k]
            elif mode == 0x00:  # immediate
                val = ins.k
            elif mode == _MSH:
                if ins.k >= len(packet):
                    return DROP
                val = 4 * (packet[ins.k] & 0x0F)
            else:
                off = ins.k + (x if mode == _IND else 0)
                width = {_W: 4, _H: 2, _B: 1}[size]
                if off + width > len(packet):
                    return DROP
                val = int.from_bytes(packet[off : off + width], "big")
            if cls == _LD:
                a = val
            else:
                x = val
        elif cls == _ST:
            mem[ins.k] = a
        elif cls == _ALU:
            operand = x if ins.code & _X else ins.k
            op = ins.code & 0xF0
            if op == _ADD:
                a = (a + operand) & mask
            elif op == _SUB:
                a = (a - operand) & mask
            elif op == _LSH:
                a = (a << operand) & mask
            elif op == _RSH:
                a >>= operand
            else:
                raise ValueError(f"ALU op {op:#x}")
        elif cls == _JMP:
            if ins.code & 0xF0 == _JA:
                pc += ins.k
            else:
                operand = x if ins.code & _X else ins.k
                pc += ins.jt if a == operand else ins.jf
        elif cls == _RET:
            return ins.k
        else:
            raise ValueError(f"opcode {ins.code:#x}")

"""A seccomp filter for the process backend's worker, as classic BPF, standard library only.

It refuses (EPERM) what a RASP program never needs and what escapes or weakens a sandbox:
new namespaces (``unshare``, ``setns``, ``clone`` with a CLONE_NEW* flag), ``ptrace`` and
cross-process memory access, every way of mounting (``mount``, ``umount2``, ``pivot_root``,
``chroot``, the new mount API), module loading, kexec, bpf, perf events, userfaultfd, keyrings,
io_uring (which bypasses seccomp for its operations), handle-based opens and clock, swap, reboot
and accounting changes. ``clone3`` answers ENOSYS so that the C library falls back to ``clone``,
whose flags the filter can see (Docker's default profile does the same). Syscalls of another
ABI (x32, or a foreign architecture) are refused as a whole.

Two ways in: :func:`filter_bytes` for bubblewrap (``bwrap --seccomp FD``: applied by bwrap
right before it executes the worker) and :func:`install` for a process that filters itself
(the worker does so before its first job when it runs without bubblewrap).
"""

from __future__ import annotations

import errno
import platform
import struct

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl)
DENIED_X86_64 = {
    "ptrace": 101, "syslog": 103, "vhangup": 153, "pivot_root": 155, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442,
}
CLONE_X86_64 = 56
CLONE3_X86_64 = 435
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (args[0], low 32 bits on little-endian)


def supported() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def filter_bytes() -> bytes:
    """The filter program (struct sock_filter[]) for x86_64."""
    if not supported():
        raise OSError(f"the seccomp filter is written for x86_64, not {platform.machine()}")
    eperm = RET_ERRNO | errno.EPERM
    prog = [
        _insn(_LD_W_ABS, 0, 0, _ARCH),
        _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(_RET_K, 0, 0, RET_KILL_PROCESS),  # another ABI: no syscall of it is allowed
        _insn(_LD_W_ABS, 0, 0, _NR),
        _insn(_JGE_K, 0, 1, X32_SYSCALL_BIT),
        _insn(_RET_K, 0, 0, eperm),  # x32 numbers alias the 64-bit ones: refuse them all
    ]
    for number in sorted(n for n in DENIED_X86_64.values() if n is not None):
        prog += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, eperm)]
    prog += [_insn(_JEQ_K, 0, 1, CLONE3_X86_64), _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    prog += [
        _insn(_JEQ_K, 0, 4, CLONE_X86_64),
        _insn(_LD_W_ABS, 0, 0, _ARG0),
        _insn(_JSET_K, 0, 1, CLONE_NEW_FLAGS),
        _insn(_RET_K, 0, 0, eperm),
        _insn(_RET_K, 0, 0, RET_ALLOW),
        _insn(_RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(prog)


def install() -> None:
    """Applies the filter to every thread of this process (no_new_privs first). Raises OSError."""
    import ctypes

    program = filter_bytes()
    count = len(program) // 8
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    PR_SET_NO_NEW_PRIVS = 38
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 317, 1, 1
    if libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) failed")


def status() -> dict[str, str]:
    """Seccomp and NoNewPrivs of this process, from /proc/self/status."""
    found: dict[str, str] = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("Seccomp", "NoNewPrivs", "Seccomp_filters", "Uid"):
                    found[key] = value.strip()
    except OSError:
        pass
    return found

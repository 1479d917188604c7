"""Run a command under a Docker-format seccomp profile, without Docker: test_runner_sandbox.py checks
docker/chromium-seccomp.json with it (Docker cannot run in CI).

    python seccomp_loader.py [--docker-namespace-rules] PROFILE COMMAND [ARGS...]

Loads the profile's rules (``defaultAction`` and, per rule, ``names`` with ``action``/``errnoRet``;
the only forms our profile uses) through libseccomp, then execs COMMAND, which inherits the filter.
``--docker-namespace-rules`` adds what Docker's default profile does to a container without
CAP_SYS_ADMIN: clone() with a namespace flag, unshare() and setns() refused, clone3() ENOSYS.
"""

import ctypes
import ctypes.util
import json
import os
import sys

ALLOW = 0x7FFF0000
MASKED_EQ = 7
NAMESPACE_FLAGS = (0x10000000, 0x20000000, 0x40000000, 0x00020000)  # CLONE_NEWUSER, NEWPID, NEWNET, NEWNS


class ArgumentComparison(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def errno_action(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


def load(profile: dict, *, docker_namespace_rules: bool) -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ArgumentComparison),
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(ALLOW if profile["defaultAction"] == "SCMP_ACT_ALLOW" else errno_action(1))

    def add(action: int, name: str, comparison: ArgumentComparison | None = None) -> None:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a system call of this architecture
        count, pointer = (1, ctypes.byref(comparison)) if comparison else (0, None)
        if lib.seccomp_rule_add_array(context, action, number, count, pointer) != 0:
            raise SystemExit(f"seccomp_rule_add({name}) failed")

    for rule in profile["syscalls"]:
        action = errno_action(rule.get("errnoRet", 1)) if rule["action"] == "SCMP_ACT_ERRNO" else ALLOW
        for name in rule["names"]:
            add(action, name)
    if docker_namespace_rules:
        add(errno_action(1), "unshare")
        add(errno_action(1), "setns")
        add(errno_action(38), "clone3")
        for flag in NAMESPACE_FLAGS:
            add(errno_action(1), "clone", ArgumentComparison(0, MASKED_EQ, flag, flag))
    if lib.seccomp_load(context) != 0:
        raise SystemExit("seccomp_load failed")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    docker_rules = arguments[0] == "--docker-namespace-rules"
    arguments = arguments[1:] if docker_rules else arguments
    with open(arguments[0]) as profile_file:
        load(json.load(profile_file), docker_namespace_rules=docker_rules)
    os.execv(arguments[1], arguments[1:])  # noqa: S606 -- the test's own command, under the filter

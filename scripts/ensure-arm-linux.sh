#!/usr/bin/env bash
# What the phone and Linux-board loop needs (edgeq's native LiteRT harness, docs/phones.md): the aarch64
# cross compiler with its glibc and C++ runtime (the bundle carries them), qemu-aarch64 for the emulated
# Arm device, OpenSSH (server and client: the emulated device is reached over a real sshd on 127.0.0.1)
# and adb for phones. Checked by what they can do (a C file cross-compiles and runs under qemu-aarch64,
# sshd and ssh-keygen exist), not by one binary being present. Installs with apt when something is
# missing and this runs as root; otherwise says what to install and fails.
set -euo pipefail
packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross qemu-user openssh-server
          openssh-client adb)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

capable() {
  for program in aarch64-linux-gnu-gcc qemu-aarch64 ssh scp ssh-keygen adb unshare; do
    command -v "$program" >/dev/null || return 1
  done
  test -x /usr/sbin/sshd || return 1
  test -f /usr/aarch64-linux-gnu/lib/libstdc++.so.6 || return 1
  printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > "$work/c.c"
  aarch64-linux-gnu-gcc "$work/c.c" -o "$work/c" >/dev/null 2>&1 || return 1
  test "$(qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/c" 2>/dev/null)" = ok || return 1
}

source "$(dirname "$0")/apt-ensure.sh"
ensure_packages "the phone and Linux-board loop needs the aarch64 cross compiler, qemu-aarch64, OpenSSH and adb" \
  "the aarch64 cross compiler or qemu-aarch64 still cannot build and run a C file"

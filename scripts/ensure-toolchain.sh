#!/usr/bin/env bash
# The cross compiler and emulator the emulated boards need. Installs them with apt when they are
# missing and this runs as root; otherwise says what to install and fails.
set -euo pipefail
packages=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
missing=()
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard/libc_nano.a ] || \
  [ -n "$(find /usr/lib/arm-none-eabi -name libc_nano.a -print -quit 2>/dev/null)" ] || missing+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "edgeq: installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "edgeq: missing ${missing[*]}; install them with: sudo apt-get install ${packages[*]}" >&2
  exit 1
fi

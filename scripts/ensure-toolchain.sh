#!/usr/bin/env bash
# The cross compiler, its C and C++ libraries and the emulator that the emulated boards and the
# generated projects need. Checked by what they can do (a C and a C++ file compile and link for a
# Cortex-M, QEMU starts), not by one binary being present: a compiler without newlib or without
# libstdc++ passes a `command -v` and fails the first C++ harness. Installs with apt when something
# is missing and this runs as root; otherwise says what to install and fails.
set -euo pipefail
packages=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

capable() {
  command -v arm-none-eabi-gcc >/dev/null && command -v arm-none-eabi-g++ >/dev/null || return 1
  command -v qemu-system-arm >/dev/null || return 1
  local machines
  machines=$(qemu-system-arm -machine help 2>/dev/null) || return 1
  for machine in mps2-an386 netduinoplus2 microbit; do grep -qw "$machine" <<<"$machines" || return 1; done
  local flags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 --specs=nano.specs --specs=nosys.specs)
  printf '#include <stdint.h>\n#include <string.h>\nint main(void){char b[4];memset(b,0,4);return (int)b[0]+(int)INT8_MAX;}\n' > "$work/c.c"
  printf '#include <cstdint>\n#include <cstring>\nstruct S{S(){}};static S s;\nint main(){return static_cast<int>(std::int8_t{1});}\n' > "$work/cxx.cc"
  arm-none-eabi-gcc "${flags[@]}" "$work/c.c" -o "$work/c.elf" >/dev/null 2>&1 || return 1
  arm-none-eabi-g++ "${flags[@]}" -fno-exceptions -fno-rtti "$work/cxx.cc" -o "$work/cxx.elf" >/dev/null 2>&1 || return 1
}

source "$(dirname "$0")/apt-ensure.sh"
ensure_packages "the ARM toolchain cannot build for Cortex-M" \
  "the ARM toolchain still cannot build a C and a C++ file for Cortex-M4"

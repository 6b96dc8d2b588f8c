"""RP2040 image pieces, pure: the 256-byte second-stage boot (boot2) with its CRC, and UF2 files for the
boot ROM's USB mass-storage drive.

boot2 (RP2040 datasheet 2.8.1): the boot ROM reads the first 256 bytes of flash into SRAM and runs
them only if the last 4 bytes are the CRC-32 of the first 252. edgeq's boot2 is BOOT2_ASM below: it sets
the flash interface (SSI) to plain 03h serial reads, mapped for execute-in-place, then starts the
application's vector table at 0x10000100. BOOT2_CODE is that source assembled by arm-none-eabi-as
(tests/test_silicon_boards.py assembles it again and compares).
"""

from __future__ import annotations

import struct

BOOT2_BYTES = 256
APPLICATION_OFFSET = 0x100   # the vector table follows boot2

BOOT2_ASM = """\
    ldr r3, =0x18000000     @ XIP_SSI (datasheet 4.10.13)
    movs r1, #0
    str r1, [r3, #0x08]     @ SSIENR = 0: the SSI is configured while disabled
    movs r1, #4
    str r1, [r3, #0x14]     @ BAUDR = 4: SCK = clk_sys / 4, slow enough for any flash at reset clocks
    ldr r1, =0x001f0300
    str r1, [r3, #0x00]     @ CTRLR0: DFS_32 = 31 (32-bit frames), TMOD = 3 (EEPROM read)
    movs r1, #0
    str r1, [r3, #0x04]     @ CTRLR1: NDF = 0, one frame per XIP access
    ldr r2, =0x180000f4
    ldr r1, =0x03000218
    str r1, [r2]            @ SPI_CTRLR0: XIP_CMD = 03h, INST_L = 8 bits, ADDR_L = 24 bits, all single-wire
    movs r1, #1
    str r1, [r3, #0x08]     @ SSIENR = 1: flash now reads at 0x10000000
    ldr r0, =0x10000100
    ldr r1, =0xe000ed08
    str r0, [r1]            @ VTOR = the application's vector table
    ldmia r0, {r0, r1}
    msr msp, r0
    bx r1                   @ its reset handler, with its initial stack pointer
.ltorg
"""

BOOT2_CODE = bytes.fromhex(
    "0a4b00219960042159610949196000215960084a084911600121996007480849086003c880f30888084700000000"
    "001800031f00f4000018180200030001001008ed00e0")

UF2_MAGIC_START0 = 0x0A324655
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_FAMILY_ID = 0x00002000
RP2040_FAMILY_ID = 0xE48BFF56
UF2_BLOCK_BYTES = 512
UF2_PAYLOAD_BYTES = 256


def crc32_rp2040(data: bytes) -> int:
    """CRC-32 as the boot ROM checks boot2: polynomial 0x04C11DB7, initial value 0xFFFFFFFF, MSB first
    (no reflection), no final XOR (datasheet 2.8.1.3.1)."""
    crc = 0xFFFF_FFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C1_1DB7) if crc & 0x8000_0000 else crc << 1
            crc &= 0xFFFF_FFFF
    return crc


def boot2_image(code: bytes = BOOT2_CODE) -> bytes:
    """The 256 bytes at the start of flash: `code`, zero padding to 252 bytes, its CRC (little-endian)."""
    if len(code) > BOOT2_BYTES - 4:
        raise ValueError(f"boot2 code is {len(code)} bytes; at most {BOOT2_BYTES - 4} fit")
    body = code + bytes(BOOT2_BYTES - 4 - len(code))
    return body + struct.pack("<I", crc32_rp2040(body))


def uf2_from_bin(image: bytes, base_address: int, family_id: int = RP2040_FAMILY_ID) -> bytes:
    """A UF2 file (github.com/microsoft/uf2) writing `image` from `base_address`: 512-byte blocks with
    256 bytes of payload each, the family ID present (flag 0x2000) so the drive accepts only its own chip."""
    if base_address % UF2_PAYLOAD_BYTES:
        raise ValueError(f"UF2 target 0x{base_address:08X} is not a multiple of {UF2_PAYLOAD_BYTES}")
    chunks = [image[at:at + UF2_PAYLOAD_BYTES] for at in range(0, len(image), UF2_PAYLOAD_BYTES)] or [b""]
    blocks = []
    for number, chunk in enumerate(chunks):
        header = struct.pack("<8I", UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_FLAG_FAMILY_ID,
                             base_address + number * UF2_PAYLOAD_BYTES, UF2_PAYLOAD_BYTES, number, len(chunks),
                             family_id)
        data = chunk + bytes(476 - len(chunk))
        blocks.append(header + data + struct.pack("<I", UF2_MAGIC_END))
    return b"".join(blocks)

"""LiteRT's C runtime (`libLiteRt.so`) for the CPU a native harness is built for: this machine's from
the installed ai-edge-litert wheel, another architecture's from that wheel's build for it, which pip
downloads (same version, its hash kept) into edgeq's cache; and, for an Arm Linux target, the glibc
loader and libraries from Debian's cross packages that make the bundle independent of the device's
libc. What the bundle was made from goes into its manifest (`bundle.json`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from edgeq.errors import ToolFailed
from edgeq.files import write_atomic
from edgeq.tools import run_tool

LIBRARY = "libLiteRt.so"
WHEEL_PLATFORMS = {"aarch64": "manylinux_2_27_aarch64"}
HOST_ABI = "x86-64"
# The aarch64 glibc and C++ runtime the bundle carries (libc6-arm64-cross, libstdc++6-arm64-cross).
CROSS_LIB_DIR = Path("/usr/aarch64-linux-gnu/lib")
CROSS_LIBS = ("ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
              "libstdc++.so.6", "libgcc_s.so.1")
CROSS_PACKAGES = ("the Debian packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and libstdc++6-arm64-cross "
                  "(make arm-linux)")
NDK_ENV = "ANDROID_NDK_HOME"  # set: the harness is built against Android's bionic by the NDK's clang
BIONIC = "bionic, the device's (Android NDK)"
GLIBC = "glibc, carried in the bundle"


@dataclass(frozen=True)
class LiteRtLibrary:
    abi: str
    directory: Path  # holds libLiteRt.so
    version: str
    wheel: str  # the wheel it came from
    sha256: str  # of libLiteRt.so

    def to_dict(self) -> dict:
        return {"abi": self.abi, "litert_version": self.version, "wheel": self.wheel, "libLiteRt_sha256": self.sha256}


def litert_version() -> str:
    return version("ai-edge-litert")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEQ_CACHE") or Path.cwd() / "build" / ".cache") / "litert"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def litert_library(abi: str) -> LiteRtLibrary:
    """libLiteRt.so for `abi`, downloaded once per version (pip, the wheel for that platform)."""
    wanted = litert_version()
    if abi == HOST_ABI:
        import ai_edge_litert  # noqa: PLC0415 - only the host build needs the installed wheel's path

        directory = Path(ai_edge_litert.__file__).parent
        return LiteRtLibrary(abi, directory, wanted, f"ai-edge-litert {wanted} (installed)",
                             _sha256(directory / LIBRARY))
    platform = WHEEL_PLATFORMS.get(abi)
    if platform is None:
        raise ToolFailed(f"no LiteRT wheel is known for {abi}; known: {', '.join(WHEEL_PLATFORMS)}, {HOST_ABI}")
    directory = cache_dir() / f"{wanted}-{abi}"
    library = directory / LIBRARY
    record = directory / "wheel.txt"
    if not (library.is_file() and record.is_file()):
        downloads = directory / "download"
        run_tool([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                  "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
                  f"ai-edge-litert=={wanted}", "-d", str(downloads)],
                 "pip and PyPI (pip download ai-edge-litert for " + platform + ")", kind="build")
        wheels = sorted(downloads.glob("ai_edge_litert-*.whl"))
        if not wheels:
            raise ToolFailed(f"pip downloaded no ai-edge-litert {wanted} wheel for {platform} into {downloads}")
        with zipfile.ZipFile(wheels[0]) as archive:
            write_atomic(library, archive.read(f"ai_edge_litert/{LIBRARY}"))
        write_atomic(record, f"{wheels[0].name} sha256={_sha256(wheels[0])}\n".encode())
        wheels[0].unlink()
    return LiteRtLibrary(abi, directory, wanted, record.read_text().strip(), _sha256(library))


def bundle_libc(abi: str) -> str:
    """Whose C library the harness uses: this machine's, the NDK's bionic on the phone, or glibc carried along."""
    if abi == HOST_ABI:
        return "this machine's"
    return BIONIC if os.environ.get(NDK_ENV) else GLIBC


def runtime_libraries(abi: str) -> list[Path]:
    """The C libraries a bundle for `abi` carries beside the harness (none for this machine, or with
    the NDK: the device's own)."""
    if bundle_libc(abi) != GLIBC:
        return []
    missing = [name for name in CROSS_LIBS if not (CROSS_LIB_DIR / name).is_file()]
    if missing:
        raise ToolFailed(f"{', '.join(missing)} not found in {CROSS_LIB_DIR}: install {CROSS_PACKAGES}")
    return [CROSS_LIB_DIR / name for name in CROSS_LIBS]

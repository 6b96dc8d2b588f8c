"""An ESP-IDF project from a rendered firmware project, for a profile whose board family is `esp_idf`
(the ESP32-S3: an Xtensa core, no compiler for it here, and ESP-IDF owns start-up, linker script and
clocks). Pure: {path: text} in, {path: text} out.

Layout: components/edgeq_model/ holds the model and edgeq's serial protocol runtime (and, for edgeq-c,
its kernels); main/ holds the harness (main.c or main.cc, called from app_main) and eq_board.h on UART0
through ESP-IDF's driver with the CCOUNT cycle counter. TFLM comes from the component registry
(espressif/esp-tflite-micro, with ESP-NN). `idf.py build` writes build/firmware.elf and .bin.
"""

from __future__ import annotations

import edgeq
from edgeq.codegen.sources import FIRMWARE_MANIFEST, FIRMWARE_PROGRAM
from edgeq.csource import generated_notice, render_template

COMPONENT = "components/edgeq_model/"
MAIN_SOURCES = ("main.c", "main.cc")
# What the Makefile-based project has that an ESP-IDF project replaces.
REPLACED = ("Makefile",)
IDF_TARGETS = {"esp32s3": "esp32s3"}


def esp_idf_project(files: dict[str, str | bytes], profile, runtime: str, tflite: bytes, *,
                    registry_tflm: bool = False) -> dict[str, str | bytes]:
    """`files` (a runtime's project, without board support) laid out as an ESP-IDF project;
    `registry_tflm`: TFLM comes from the component registry (idf_component.yml)."""
    notice = generated_notice(tflite)
    context = {"notice": notice, "runtime": runtime, "device": profile.name, "program": FIRMWARE_PROGRAM,
               "target": IDF_TARGETS[profile.board.chip], "clock_mhz": round(profile.clock_mhz),
               "baud": profile.serial.baud, "version": edgeq.__version__}
    out: dict[str, str | bytes] = {}
    component_sources, main_sources = [], []
    for path, content in files.items():
        if path in REPLACED or path.startswith("arduino/") or path == FIRMWARE_MANIFEST:
            continue
        if path in MAIN_SOURCES:
            out[f"main/{path}"] = content
            main_sources.append(path)
        elif path.endswith((".c", ".cc", ".h")):
            out[COMPONENT + path] = content
            if not path.endswith(".h"):
                component_sources.append(path)
        else:
            out[path] = content  # the .tflite
    out[COMPONENT + "eq_board.h"] = render_template("boards/eq_board.h.j2", notice=notice, version=edgeq.__version__,
                                                     board=profile.name, cycles_unit="cycles")
    out["main/eq_board_esp32.c"] = render_template("boards/esp_idf/eq_board_esp32.c.j2", **context)
    main_sources.append("eq_board_esp32.c")
    out["CMakeLists.txt"] = render_template("boards/esp_idf/CMakeLists.txt.j2", **context)
    out[COMPONENT + "CMakeLists.txt"] = render_template("boards/esp_idf/component.cmake.j2", **context,
                                                         sources=[f'"{s}"' for s in sorted(component_sources)])
    out["main/CMakeLists.txt"] = render_template("boards/esp_idf/main.cmake.j2", **context,
                                                 sources=[f'"{s}"' for s in main_sources])
    out["sdkconfig.defaults"] = render_template("boards/esp_idf/sdkconfig.defaults.j2", **context)
    if registry_tflm:
        out["main/idf_component.yml"] = render_template("boards/esp_idf/idf_component.yml.j2", **context)
    return out

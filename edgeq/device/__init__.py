"""Stage 9, the device: build a firmware project (`build`), flash it (`flash`), reach it over serial
or start it in QEMU or on the host (`connect`), measure it there (`measure`); `loop` is the
build -> flash -> measure that both deploy and the planner run."""

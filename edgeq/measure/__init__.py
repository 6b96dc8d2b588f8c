"""Stage 5, measurement on this host: the float and quantized models in LiteRT and the tflite-micro
interpreter (`interpreters`), the fit verdict against the device's budget (`fit`), and the per-op
cost model fitted to instruction counts on the emulated boards (`costmodel`)."""

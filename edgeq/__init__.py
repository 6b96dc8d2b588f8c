"""edgeq: a trained network and a target device in, measured ready-to-flash firmware out.

The pipeline, one module a stage, data flowing one way:
profiles -> load -> plan -> convert -> codegen -> build -> flash -> measure -> report
"""

__version__ = "0.1.0"

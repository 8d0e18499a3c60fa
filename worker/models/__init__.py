"""Model management beyond storage: references, the registry, checks of imported files, export.

``refs`` (what a model reference may be), ``registry`` (names, versions, aliases),
``file_check`` (an uploaded nnlib file validated as untrusted), ``onnx_export`` (nnlib -> ONNX).
Weights themselves are read and written only by ``worker.models_store``.
"""

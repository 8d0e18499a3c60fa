"""A predict request -> a checked raw batch: JSON ``{"inputs": ...}`` or a multipart image.

Work that grows with the body (parsing a large JSON body, decoding an image) runs in a worker
thread, so one big request never stalls the event loop that serves every other request.
"""

from __future__ import annotations

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api import predict as p
from api.images import image_to_sample
from api.input_error import InputError, UnsupportedMediaType
from api.json_body import INLINE_PARSE_BYTES
from api.model_cache import CachedModel
from worker.config import Settings


async def read_batch(request: Request, entry: CachedModel, settings: Settings) -> np.ndarray:
    """float32 (n, *input_shape) from the request body; InputError (422/413) if refused."""
    max_batch = settings.max_predict_batch
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        raw = await _image_sample(request, entry, settings.max_image_pixels)
        return p.as_batch(raw, entry.input_shape, max_batch)
    body = await request.body()
    _refuse_raw_image(request.headers.get("content-type", ""), body)
    if len(body) <= INLINE_PARSE_BYTES:
        return p.batch_from_json(body, entry.input_shape, max_batch)
    return await run_in_threadpool(p.batch_from_json, body, entry.input_shape, max_batch)


IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG


def _refuse_raw_image(content_type: str, body: bytes) -> None:
    """An image sent as the raw body (``--data-binary @x.png``) is refused with the form that
    works: 415 for an image content type, 422 for image bytes under another one."""
    is_image_type = content_type.lower().startswith("image/")
    if is_image_type or body.startswith(IMAGE_SIGNATURES):
        error = UnsupportedMediaType if is_image_type else InputError
        raise error(
            "body: an image must be sent as a multipart/form-data field named 'file' "
            '(curl -F file=@x.png), not as the raw body; JSON bodies are {"inputs": [...]}'
        )


async def _image_sample(request: Request, entry: CachedModel, max_pixels: int) -> np.ndarray:
    try:
        form = await request.form()
    except HTTPException as error:  # Starlette's multipart parser refuses the body
        raise InputError(f"body: not a valid multipart/form-data body ({error.detail})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError("file: expected a multipart field 'file' holding a PNG or JPEG")
    content = await upload.read()
    preprocessing = entry.metadata.get("preprocessing") or {}
    # strokes come back as 0..1; the model was trained on raw 0..divisor (16 for the 8x8 digits)
    pixel_max = float(preprocessing.get("divisor", 255.0))
    return await run_in_threadpool(
        image_to_sample, content, entry.input_shape, pixel_max, max_pixels
    )

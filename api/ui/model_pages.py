"""Dashboard pages about models (layers, metrics, the drawing canvas) and data sets."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import DatasetStoreDep, ModelStoreDep
from api.ids import is_dataset_id, is_model_id
from api.json_body import StrictJSONRoute
from api.predict import InputError, image_spatial_size
from api.routers.datasets import dataset_view
from api.ui.access import PageTenant
from api.ui.job_pages import not_found
from api.ui.render import page

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictJSONRoute)


def layer_rows(model) -> list[dict]:
    """One row per spec layer: type, spec, output shape and parameter count."""
    rows = []
    for index, layers in model.groups:
        spec = dict(model.spec["layers"][index])
        kind = spec.pop("type", "?")
        params = sum(int(a.size) for layer in layers for a in layer.params.values())
        rows.append(
            {
                "index": index,
                "type": kind,
                "options": ", ".join(f"{k}={v}" for k, v in spec.items()),
                "output_shape": list(layers[-1].output_shape) if layers else [],
                "parameters": params,
            }
        )
    return rows


def drawable(metadata: dict) -> tuple[int, int] | None:
    """(height, width) of a grey-scale image classifier's input, else None (no canvas)."""
    if not (metadata.get("num_classes") or metadata.get("classes")):
        return None
    try:
        return image_spatial_size(tuple(metadata.get("input_shape") or ()))
    except InputError:
        return None


# what the canvas asks for, by the built-in set a model was trained on; others draw "an item"
DRAWING_SUBJECTS = {"digits": "a digit", "mnist": "a digit", "fashion-mnist": "a piece of clothing"}


def drawing_subject(metadata: dict) -> str:
    """What to draw for this model ("a digit" only for digits and MNIST models)."""
    dataset = metadata.get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return DRAWING_SUBJECTS.get(name, "an item") if isinstance(name, str) else "an item"


@router.get("/models")
def models_page(request: Request, tenant: PageTenant, models: ModelStoreDep):
    return page(request, "models.html", tenant=tenant, models=models.list(tenant))


@router.get("/models/{model_id}")
async def model_page(request: Request, model_id: str, tenant: PageTenant, models: ModelStoreDep):
    if not is_model_id(model_id):
        return not_found(request, tenant, f"model {model_id} not found")
    metadata = await run_in_threadpool(models.get, model_id)
    if metadata is None or metadata.get("tenant") != tenant:
        return not_found(request, tenant, f"model {model_id} not found")
    try:
        model, _ = await run_in_threadpool(models.load_model, model_id)
        layers = layer_rows(model)
    except KeyError:
        return not_found(request, tenant, f"model {model_id} not found")
    classes = metadata.get("classes") or [str(i) for i in range(metadata.get("num_classes") or 0)]
    return page(
        request,
        "model.html",
        tenant=tenant,
        model=metadata,
        layers=layers,
        classes=classes,
        image_size=drawable(metadata),
        drawing_subject=drawing_subject(metadata),
    )


@router.get("/datasets")
def datasets_page(request: Request, tenant: PageTenant, datasets: DatasetStoreDep):
    sets = [dataset_view(d) for d in datasets.list(tenant)]
    return page(request, "datasets.html", tenant=tenant, datasets=sets, builtin=BUILTIN_SETS)


@router.get("/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: str, tenant: PageTenant, datasets: DatasetStoreDep):
    info = datasets.info(dataset_id) if is_dataset_id(dataset_id) else None
    if info is None or info.get("tenant") != tenant:
        return not_found(request, tenant, f"data set {dataset_id} not found")
    view = dataset_view(info)
    view["samples"] = {k: (v[0] if v else 0) for k, v in (info.get("shapes") or {}).items()}
    view["features"] = math.prod(info.get("input_shape") or [0])
    return page(request, "dataset.html", tenant=tenant, dataset=view)


BUILTIN_SETS = [
    ("digits", "8x8 hand-written digits (scikit-learn, offline), 10 classes"),
    ("mnist", "28x28 hand-written digits, 10 classes (downloaded or Debian package)"),
    ("fashion-mnist", "28x28 clothing images, 10 classes"),
    ("blobs", "synthetic Gaussian blobs (size, classes, features, noise)"),
    ("spirals", "synthetic interleaved spirals (size, classes, noise, turns)"),
]

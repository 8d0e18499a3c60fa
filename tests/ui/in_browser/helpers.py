"""What the browser tests share: the tenants' keys, a digits job spec, logging in, drawing."""

from __future__ import annotations

KEY_A, KEY_B = "ui-key-alice-0123456789", "ui-key-bob-0123456789"
LAYERS = [
    {"type": "dense", "units": 256, "activation": "relu"},
    {"type": "dense", "units": 256, "activation": "relu"},
    {"type": "dense", "units": 10},
]


def digits_spec(name: str, epochs: int) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "model": {"layers": LAYERS},
        "optimizer": {"type": "adam", "lr": 0.002},
        "batch_size": 16,
        "epochs": epochs,
        "seed": 0,
    }


def log_in(page, key: str) -> None:
    page.goto("/ui/jobs")
    page.fill('input[name="api_key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url("**/ui/jobs")


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Mouse strokes on the canvas; points are fractions of its width and height."""
    box = page.get_by_test_id("digit-canvas").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()

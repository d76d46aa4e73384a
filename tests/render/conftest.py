from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def templates(tmp_path: Path):
    """Writes template files into a fresh templates/ folder and returns the folder."""
    folder = tmp_path / "templates"
    folder.mkdir()

    def write(**files: str) -> Path:
        for filename, content in files.items():
            (folder / filename.replace("__", ".")).write_text(content, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def shop_context():
    """Builds the context the pipeline passes: contact (traits, id, email), event, project."""
    return _shop_context


def _shop_context(**contact: Any) -> dict[str, Any]:
    products = [
        {
            "name": "Merino Crew Sweater",
            "price": 89.0,
            "quantity": 1,
            "url": "https://shop.example.com/products/merino?ref=mail&size=m",
            "image_url": "https://shop.example.com/images/merino.jpg",
        },
        {
            "name": "Ceramic Pour-Over Set",
            "price": 48.5,
            "quantity": 2,
            "url": "https://shop.example.com/products/pour-over",
            "image_url": "https://shop.example.com/images/pour-over.jpg",
        },
    ]
    return {
        "contact": {"id": "user_1", "email": "ada@example.com", **contact},
        "event": {
            "event": "Order Completed",
            "properties": {
                "order_id": "order_00042",
                "products": products,
                # What a Product Viewed says of its one product.
                **{k: products[0][k] for k in ("name", "price", "url", "image_url")},
                "cart_total": 186.0,
                "total": 186.0,
                "currency": "USD",
            },
        },
        "project": {
            "name": "Northwind Goods",
            "postal_address": "12 Harbour St, Portland, ME 04101, USA",
            "url": "https://shop.example.com",
        },
        "unsubscribe_url": "https://mail.example.com/u/tok123",
        "message_id": "msg-1",
    }

"""Each category embedded by its own network: people by a person re-identification network, other categories by
the generic backbone. One vector per instance; vectors of different categories may differ in length."""
from __future__ import annotations

import numpy as np

from reid_ray.models.base import Head, PatchEmbedder
from reid_ray.records import Instances


class CategoryEmbedders:
    def __init__(self, default: tuple[PatchEmbedder, Head], by_category: dict[str, tuple[PatchEmbedder, Head]]) -> None:
        self.default = default
        self.by_category = by_category

    def for_category(self, category: str) -> tuple[PatchEmbedder, Head]:
        return self.by_category.get(category, self.default)

    def embed(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        """One L2-normalised vector per instance, each from its category's embedder and head."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(instances)
        categories = np.asarray(instances.categories)
        for category in sorted(set(categories.tolist())):
            index = np.flatnonzero(categories == category)
            embedder, head = self.for_category(category)
            pooled = head.pool(embedder.patch_sets(frame, instances.select(index)))
            for k, i in enumerate(index):
                out[i] = pooled[k]
        return out

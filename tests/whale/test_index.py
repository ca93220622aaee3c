"""The catalogue index's files: generations switched by one rename, so a kill never leaves half an index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spotter.whale.index import COLUMNS, CatalogueIndex, load_index


def small_index(folder, n: int = 3) -> CatalogueIndex:
    photos = pd.DataFrame({"image": [f"p{i}.jpg" for i in range(n)], "individual_id": ["a"] * n,
                           "path": [f"/x/p{i}.jpg" for i in range(n)], "sha1": [f"h{i}" for i in range(n)],
                           "box": [""] * n})
    plain = np.eye(n, 4, dtype=np.float32)
    return CatalogueIndex(folder, photos[COLUMNS], plain, None, {"fingerprint": "f", "run": "r"})


def test_saves_switch_generations_and_leave_one_set_of_files(tmp_path) -> None:
    index = small_index(tmp_path)
    index.save()
    index.append(small_index(tmp_path, 1).photos.assign(image="q.jpg", path="/x/q.jpg"), np.ones((1, 4), np.float32),
                 None)
    index.save()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["embeddings-1.npz", "index.json", "photos-1.csv"]
    again = load_index(tmp_path)
    assert len(again.photos) == 4 and again.plain.shape == (4, 4)


def test_a_save_killed_before_its_switch_leaves_the_old_index_whole(tmp_path) -> None:
    index = small_index(tmp_path)
    index.save()
    # a kill after the new generation's files were written, before index.json switched to them
    (tmp_path / "photos-1.csv").write_text("image,individual_id,path,sha1,box\nhalf")
    np.save(tmp_path / "stray.npy", np.zeros(1))
    (tmp_path / "stray.npy").rename(tmp_path / "embeddings-1.npz")
    old = load_index(tmp_path)
    assert len(old.photos) == 3 and old.plain.shape == (3, 4)
    old.save()  # the next save goes past the torn generation
    assert load_index(tmp_path).description["generation"] == 2

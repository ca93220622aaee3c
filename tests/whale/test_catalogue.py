import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spotter.errors import SpotterError
from spotter.whale.catalogue import (
    build_catalogue,
    load_catalogue,
    match_photos,
    matches_frame,
    save_catalogue,
    write_contact_sheet,
)

COLOURS = {"red": (255, 128, 128), "green": (128, 255, 128), "blue": (128, 128, 255)}


def fake_embed(images):
    """Mean colour around mid-grey: the three animals point along three axes."""
    return np.stack([np.asarray(im, np.float32).reshape(-1, 3).mean(0) - 128 for im in images])


def _photo(path, colour, rng):
    pixels = np.clip(np.array(colour, np.float32) + rng.normal(0, 6, (24, 24, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def catalogue_dir(tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = []
    for name, colour in COLOURS.items():
        for i in range(2):
            _photo(photos / f"{name}{i}.png", colour, rng)
            rows.append((f"{name}{i}.png", name))
    pd.DataFrame(rows, columns=["image", "individual_id"]).to_csv(tmp_path / "known.csv", index=False)
    return tmp_path


def test_round_trip_and_match(catalogue_dir, tmp_path):
    catalogue = build_catalogue(catalogue_dir / "photos", catalogue_dir / "known.csv", fake_embed, batch_size=4,
                                new_threshold=0.8, meta={"model": "fake"})
    saved = save_catalogue(catalogue, tmp_path / "index")
    assert sorted(p.name for p in saved.iterdir()) == ["catalogue.json", "embeddings.npy", "ids.csv"]
    loaded = load_catalogue(saved)
    assert np.allclose(loaded.embeddings, catalogue.embeddings)
    assert np.allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0)
    assert loaded.meta["model"] == "fake" and loaded.meta["photos"] == 6 and loaded.meta["individuals"] == 3

    rng = np.random.default_rng(1)
    queries = [_photo(tmp_path / "q_blue.png", (110, 120, 250), rng), _photo(tmp_path / "q_grey.png", (220, 220, 220), rng)]
    matches = match_photos(loaded, queries, fake_embed, top=3)
    blue, grey = matches
    assert [c.individual_id for c in blue.candidates][0] == "blue" and not blue.looks_new
    assert blue.candidates[0].score > 0.95 and blue.candidates[0].image.startswith("blue")
    assert len(blue.candidates) == 3 and blue.candidates[0].score >= blue.candidates[1].score
    assert grey.looks_new  # equally far from all three: best cosine ≈ 0.58 < 0.8
    assert not match_photos(loaded, queries[1:], fake_embed, new_threshold=0.5)[0].looks_new

    frame = matches_frame(matches)
    assert list(frame.columns) == ["photo", "rank", "individual_id", "score", "image", "looks_new"] and len(frame) == 6
    sheet = write_contact_sheet(matches, loaded, tmp_path / "sheet.png", thumb=32)
    with Image.open(sheet) as image:
        assert image.size == (4 * 32, 2 * (32 + 28))


def test_bad_inputs(catalogue_dir, tmp_path):
    table = pd.read_csv(catalogue_dir / "known.csv")
    pd.concat([table, table.iloc[[0]]]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(SpotterError, match="duplicate image"):
        build_catalogue(catalogue_dir / "photos", tmp_path / "dup.csv", fake_embed)
    (catalogue_dir / "photos" / "red0.png").unlink()
    with pytest.raises(SpotterError, match="not found"):
        build_catalogue(catalogue_dir / "photos", catalogue_dir / "known.csv", fake_embed)
    with pytest.raises(SpotterError, match="not a catalogue"):
        load_catalogue(tmp_path)


def test_dimension_mismatch(catalogue_dir, tmp_path):
    catalogue = build_catalogue(catalogue_dir / "photos", catalogue_dir / "known.csv", fake_embed)
    with pytest.raises(SpotterError, match="dimensions"):
        match_photos(catalogue, [catalogue_dir / "photos" / "red0.png"], lambda ims: np.ones((len(ims), 5)))


def test_embedder_wraps_a_network(catalogue_dir):
    import torch

    from spotter.whale.embed import create_embedder

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())  # mean colour per channel
    embed = create_embedder(net, image_size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    catalogue = build_catalogue(catalogue_dir / "photos", catalogue_dir / "known.csv", embed)
    assert catalogue.embeddings.shape == (6, 3)
    match = match_photos(catalogue, [catalogue_dir / "photos" / "green1.png"], embed, top=1)[0]
    assert match.candidates[0].individual_id == "green"
    # a net that sees the left and the right half apart: a mirror swaps the halves' colours
    halves = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((1, 2)), torch.nn.Flatten())
    image = Image.new("RGB", (16, 16), (255, 0, 0))
    image.paste((0, 0, 255), (8, 0, 16, 16))  # red left, blue right
    plain = create_embedder(halves, 16)([image]).reshape(3, 2)
    mirrored = create_embedder(halves, 16, flip=True)([image]).reshape(3, 2)
    assert plain[0, 0] > plain[0, 1] and plain[2, 1] > plain[2, 0]  # red on the left, blue on the right
    assert np.allclose(mirrored, plain[:, ::-1], atol=1e-5)

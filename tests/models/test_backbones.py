import pytest
import torch
from PIL import Image

from spotter.errors import SpotterError
from spotter.models.backbones import (
    create_backbone,
    lite0_weights_path,
    map_lite0_keys,
    preprocessing,
    read_weights,
)


@pytest.fixture(scope="module")
def legacy():
    return read_weights(lite0_weights_path())


def test_every_lite0_key_maps(legacy):
    import timm

    mapped = map_lite0_keys(legacy)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(mapped) == len(legacy)  # one timm key per legacy key
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_unmappable_key_raises(legacy):
    with pytest.raises(SpotterError, match="no timm name"):
        map_lite0_keys({**legacy, "_blocks.99._bn0.weight": torch.zeros(1)})


def test_mapped_model_sees_a_cat():
    import timm
    from skimage import data

    model = create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=1000).eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["interpolation"] == "bicubic"  # TF-ported weights
    x = timm.data.create_transform(**cfg)(Image.fromarray(data.chelsea())).unsqueeze(0)
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    assert 281 <= int(probs.argmax()) <= 285  # ImageNet's domestic cats
    assert probs[281:286].sum() > 0.5


@pytest.mark.parametrize("kwargs", [{}, {"features_only": True, "out_indices": (3, 4)}])
def test_bundled_weights_fit_variants(kwargs):
    model = create_backbone("tf_efficientnet_lite0", pretrained=True, **kwargs)
    out = model(torch.zeros(1, 3, 64, 64))
    if kwargs:
        assert [o.shape[1] for o in out] == [112, 320]
    else:
        assert out.shape == (1, 1280)


def test_local_round_trip_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    source = create_backbone("test_resnet")
    state = {k: v.clone() for k, v in source.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        model = create_backbone("test_resnet", pretrained=tmp_path / name)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_mismatched_weights_raise(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    state = create_backbone("test_resnet").state_dict()
    partial = {k: v for k, v in list(state.items())[2:]}
    save_file(partial, tmp_path / "partial.safetensors")
    with pytest.raises(SpotterError, match="missing keys"):
        create_backbone("test_resnet", pretrained=tmp_path / "partial.safetensors")
    with pytest.raises(SpotterError, match="not found"):
        create_backbone("test_resnet", pretrained=tmp_path / "nope.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(SpotterError, match="cannot read"):
        create_backbone("test_resnet", pretrained=tmp_path / "junk.pt")
    # no network (tests never download): hub weights absent from the cache are one line naming the option
    monkeypatch.setattr("spotter.models.backbones._hub_reachable", lambda: False)
    with pytest.raises(SpotterError, match=r"model.pretrained=true: .*'test_resnet'.* \(no network\)"):
        create_backbone("test_resnet", pretrained=True)


def test_preprocessing():
    cfg = preprocessing("tf_efficientnet_lite0")
    assert cfg["std"] == (0.5, 0.5, 0.5) and cfg["crop_pct"] == 0.875

"""LoraTrackerModel: exact parity with the official forward, API, loading DINOv2 weights, parameter counts."""

import json

import pytest
import torch
from conftest import MODEL_CASES, OFFICIAL, tiny_config
from safetensors.torch import load_file
from transformers import AutoModel, Dinov2Config, Dinov2Model

from lorat_hf import LoraTrackerConfig, LoraTrackerModel, add_adapters, count_parameters, load_tracker_model
from lorat_hf.convert import convert
from lorat_hf.labels import template_token_type_ids_from_boxes
from lorat_hf.modeling_lora_tracker import resample_position_embeddings


def _case(name):
    config = json.loads((OFFICIAL / name / "config.json").read_text())
    return config, load_file(OFFICIAL / name / "io.safetensors")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each official case converted once into an adapter folder."""
    folders = {}
    for name in MODEL_CASES:
        config, _ = _case(name)
        folder = tmp_path_factory.mktemp(name) / "adapter"
        convert(
            OFFICIAL / name / "dinov2.safetensors",
            OFFICIAL / name / "lorat_release.safetensors",
            folder,
            num_heads=config["backbone"]["num_heads"],
            template_size=config["geometry"]["template_size_wh"][0],
            search_size=config["geometry"]["search_size_wh"][0],
        )
        folders[name] = folder
    return folders


@pytest.mark.parametrize("name", MODEL_CASES)
@pytest.mark.parametrize("merge", [False, True])
def test_forward_reproduces_the_official_outputs(converted, name, merge):
    config, io = _case(name)
    atol = config["recommended_atol"]
    model = load_tracker_model(converted[name], merge=merge)
    with torch.no_grad():
        out = model(
            template_pixel_values=io["z"], search_pixel_values=io["x"], template_token_type_ids=io["z_feat_mask"]
        )
    for suffix in ("", "_merged"):  # the official unmerged and merged outputs differ by a few 1e-6 themselves
        torch.testing.assert_close(out.score_map, io["score_map" + suffix], atol=atol["score_map"], rtol=0)
        torch.testing.assert_close(out.pred_boxes, io["boxes" + suffix], atol=atol["boxes"], rtol=0)
    reference = io["score_map_merged" if merge else "score_map"]
    assert (out.score_map - reference).abs().max() <= 5e-6  # same arithmetic as the matching official model


def test_intermediate_tensors_match_the_official_blocks(converted):
    _, io = _case("model_a_224_gelu")
    model = load_tracker_model(converted["model_a_224_gelu"]).get_base_model()
    with torch.no_grad():
        template = model.embeddings.embed_template(io["z"], io["z_feat_mask"])
        search = model.embeddings.embed_search(io["x"])
        out = model(io["z"], io["x"], io["z_feat_mask"], output_hidden_states=True)
    torch.testing.assert_close(template, io["debug_z_tokens"], atol=1e-5, rtol=0)
    torch.testing.assert_close(search, io["debug_x_tokens"], atol=1e-5, rtol=0)
    for index in range(2):
        torch.testing.assert_close(out.hidden_states[index + 1], io[f"debug_block{index}_out"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.last_hidden_state, io["debug_search_features"], atol=1e-5, rtol=0)


def test_template_boxes_give_the_official_foreground_mask():
    for name in MODEL_CASES:
        config, io = _case(name)
        grid = tuple(config["geometry"]["template_feat_size_wh"])
        mask = template_token_type_ids_from_boxes(io["template_boxes_xyxy"], grid, 14)
        assert torch.equal(mask, io["z_feat_mask"]), name


def test_template_mask_edge_cases():
    # a box on cell borders touches only the cells it overlaps; a box beyond the crop is clipped to the grid
    mask = template_token_type_ids_from_boxes(
        torch.tensor([[14.0, 14.0, 28.0, 28.0], [-20.0, 40.0, 500.0, 41.0]]), (4, 4), 14
    )
    assert mask[0].nonzero().tolist() == [[1, 1]]
    assert mask[1].sum() == 4 and mask[1, 2].all()


def test_forward_from_template_boxes_equals_forward_from_token_types():
    model = LoraTrackerModel(tiny_config()).eval()
    template, search = torch.randn(2, 3, 56, 56), torch.randn(2, 3, 112, 112)
    boxes = torch.tensor([[10.0, 12.0, 40.0, 30.0], [0.0, 0.0, 56.0, 56.0]], dtype=torch.float64)
    ids = template_token_type_ids_from_boxes(boxes, (4, 4), 14)
    with torch.no_grad():
        a = model(template, search, template_boxes=boxes)
        b = model(template, search, template_token_type_ids=ids)
    assert torch.equal(a.score_map, b.score_map) and a.pred_boxes.shape == (2, 8, 8, 4)
    assert a.score_map.shape == (2, 8, 8)


def test_position_embedding_is_resampled_bicubic_and_the_template_slices_it():
    table = torch.randn(1, 37 * 37, 16)
    resampled = resample_position_embeddings(table, (16, 16))
    reference = (
        torch.nn.functional.interpolate(
            table.reshape(1, 37, 37, 16).permute(0, 3, 1, 2), size=(16, 16), mode="bicubic", align_corners=False
        )
        .permute(0, 2, 3, 1)
        .reshape(1, 256, 16)
    )
    assert torch.equal(resampled, reference)
    # transformers' own interpolation at the search size gives the same table
    backbone = Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=518))
    hf = backbone.embeddings.interpolate_pos_encoding(torch.zeros(1, 257, 16), 224, 224)[:, 1:]
    ours = resample_position_embeddings(backbone.embeddings.position_embeddings[:, 1:].detach(), (16, 16))
    torch.testing.assert_close(ours, hf.detach(), atol=1e-6, rtol=0)


def test_inputs_are_checked():
    model = LoraTrackerModel(tiny_config())
    template, search, ids = (
        torch.randn(1, 3, 56, 56),
        torch.randn(1, 3, 112, 112),
        torch.zeros(1, 4, 4, dtype=torch.long),
    )
    with pytest.raises(ValueError, match="search_pixel_values must be"):
        model(template, torch.randn(1, 3, 224, 224), ids)
    with pytest.raises(ValueError, match="template_token_type_ids must be"):
        model(template, search, torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="template_boxes"):
        model(template, search)


def test_loss_is_returned_with_labels_and_gradients_reach_only_trainable_parts():
    torch.manual_seed(0)
    model = add_adapters(LoraTrackerModel(tiny_config()))
    labels = torch.tensor([[0.4, 0.4, 0.6, 0.6], [0.1, 0.2, 0.5, 0.9]])
    out = model(
        template_pixel_values=torch.randn(2, 3, 56, 56),
        search_pixel_values=torch.randn(2, 3, 112, 112),
        template_token_type_ids=torch.ones(2, 4, 4, dtype=torch.long),
        labels=labels,
    )
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads == trainable
    assert all(("lora_" in n) or ("modules_to_save" in n) for n in trainable)
    assert not model.get_base_model().embeddings.position_embeddings.requires_grad


def test_save_and_load_round_trip_is_exact(tmp_path):
    model = LoraTrackerModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, LoraTrackerModel)
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    inputs = (torch.randn(1, 3, 56, 56), torch.randn(1, 3, 112, 112), torch.zeros(1, 4, 4, dtype=torch.long))
    with torch.no_grad():
        assert torch.equal(model(*inputs).score_map, reloaded(*inputs).score_map)


def test_gradient_checkpointing_and_attention_backends_agree():
    torch.manual_seed(0)
    config = tiny_config()
    inputs = dict(
        template_pixel_values=torch.randn(2, 3, 56, 56),
        search_pixel_values=torch.randn(2, 3, 112, 112),
        template_token_type_ids=torch.zeros(2, 4, 4, dtype=torch.long),
        labels=torch.tensor([[0.3, 0.3, 0.7, 0.7]] * 2),
    )
    eager = LoraTrackerModel._from_config(config, attn_implementation="eager")
    sdpa = LoraTrackerModel._from_config(config, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.encoder.layer[0].attention.config._attn_implementation == "sdpa"
    torch.testing.assert_close(eager(**inputs).score_map, sdpa(**inputs).score_map, atol=1e-5, rtol=0)
    eager.train()
    loss = eager(**inputs).loss
    loss.backward()
    reference = {n: p.grad.clone() for n, p in eager.named_parameters() if p.grad is not None}
    eager.zero_grad()
    eager.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in eager.encoder.layer)
    torch.testing.assert_close(eager(**inputs).loss, loss)
    eager(**inputs).loss.backward()
    for name, grad in reference.items():
        torch.testing.assert_close(dict(eager.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5)


def test_from_backbone_loads_a_local_dinov2_checkpoint(tmp_path):
    torch.manual_seed(0)
    dinov2 = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=518))
    dinov2.save_pretrained(tmp_path / "dinov2")
    model = LoraTrackerModel.from_backbone(str(tmp_path / "dinov2"), config=tiny_config())
    state = dinov2.state_dict()
    assert torch.equal(model.encoder.layer[1].mlp.fc2.weight, state["encoder.layer.1.mlp.fc2.weight"])
    assert torch.equal(model.layernorm.bias, state["layernorm.bias"])
    expected = resample_position_embeddings(state["embeddings.position_embeddings"][:, 1:], (8, 8))
    assert torch.equal(model.embeddings.position_embeddings, expected)
    assert model.config.backbone_name_or_path == str(tmp_path / "dinov2")
    with pytest.raises(ValueError, match="num_hidden_layers"):
        LoraTrackerModel.from_backbone(str(tmp_path / "dinov2"), config=tiny_config(dinov2={"num_hidden_layers": 3}))


def test_backbone_state_dict_problems_are_listed():
    model = LoraTrackerModel(tiny_config())
    state = {
        k: v
        for k, v in Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2))
        .state_dict()
        .items()
    }
    state.pop("encoder.layer.0.norm1.weight")
    state["encoder.layer.0.mlp.fc1.weight"] = torch.zeros(7, 32)
    state["encoder.layer.9.extra"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        model.load_backbone_state_dict(state)
    message = str(info.value)
    assert "encoder.layer.0.norm1.weight" in message and "encoder.layer.9.extra" in message and "(7, 32)" in message


@pytest.mark.parametrize(
    "variant, total, trainable",
    [
        ("B-224", 98_708_741, 12_985_349),
        ("L-224", 335_744_005, 32_518_149),
        ("g-378", 1_215_727_621, 80_234_501),
        ("B-378", 98_708_741 + (729 - 256) * 768, 12_985_349),
    ],
)
def test_parameter_counts_equal_the_official_ones(variant, total, trainable):
    with torch.device("meta"):
        model = add_adapters(LoraTrackerModel(LoraTrackerConfig.from_variant(variant)))
    assert count_parameters(model) == (total, trainable)

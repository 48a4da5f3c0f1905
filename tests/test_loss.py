"""The LoRAT criterion against the official label/loss fixtures, its edge cases, and its all-reduce across ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import OFFICIAL, tiny_config
from safetensors.torch import load_file

from lorat_hf import LoraTrackerModel
from lorat_hf.boxes import box_iou_and_giou, clip_boxes_to_image
from lorat_hf.labels import normalized_target_box, positive_cells_from_box, positive_mask_from_normalized_boxes
from lorat_hf.loss_lora_tracker import lora_tracker_loss

GEOMETRIES = {"g224": (224, 16), "g378": (378, 27)}


@pytest.fixture(scope="module")
def official():
    return load_file(OFFICIAL / "label_loss" / "label_loss.safetensors")


def _case(official, name):
    search, grid = GEOMETRIES[name]
    return {key.split(".", 1)[1]: value for key, value in official.items() if key.startswith(name + ".")}, search, grid


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_labels_match_the_official_generator(official, name):
    case, search, grid = _case(official, name)
    boxes_px = case["gt_boxes_search_px_xyxy"].numpy()

    clipped = clip_boxes_to_image(boxes_px, (search, search))
    np.testing.assert_array_equal(clipped, case["gt_boxes_search_px_xyxy_clipped"].numpy())

    targets = np.stack([normalized_target_box(box, (search, search)) for box in boxes_px])
    assert targets.dtype == np.float32
    np.testing.assert_array_equal(targets, case["gt_boxes_normalized"].numpy())

    masks = np.stack([positive_cells_from_box(box, (search, search), (grid, grid)) for box in boxes_px])
    np.testing.assert_array_equal(masks, case["positive_mask"].numpy().astype(bool))
    # The collated order of positives (batch, then row * W + col) is the order of the per-positive GIoU losses.
    batch_index, cell_index = torch.from_numpy(masks).reshape(len(masks), -1).nonzero(as_tuple=True)
    torch.testing.assert_close(batch_index, case["positive_sample_batch_dim_indices"], rtol=0, atol=0)
    torch.testing.assert_close(cell_index, case["positive_sample_map_dim_indices"], rtol=0, atol=0)
    assert float(masks.sum()) == case["num_positive_samples"].item()

    # The model derives the same positives from normalised labels when no mask is passed.
    derived = positive_mask_from_normalized_boxes(torch.from_numpy(targets), (grid, grid))
    np.testing.assert_array_equal(derived.numpy(), masks)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_iou_targets_bce_and_giou_per_element_match(official, name):
    case, _, grid = _case(official, name)
    mask = case["positive_mask"].bool()
    batch_index, cell_index = mask.reshape(len(mask), -1).nonzero(as_tuple=True)
    predicted = case["pred_boxes"].reshape(len(mask), -1, 4)[batch_index, cell_index]
    targets = case["gt_boxes_normalized"][batch_index]
    iou, giou = box_iou_and_giou(targets, predicted, eps=1e-6)

    iou_map = torch.zeros(len(mask), grid * grid)
    iou_map[batch_index, cell_index] = iou
    torch.testing.assert_close(iou_map.view_as(case["iou_target_map"]), case["iou_target_map"], rtol=0, atol=0)
    torch.testing.assert_close(1 - giou, case["giou_loss_per_positive"], rtol=0, atol=0)
    bce = F.binary_cross_entropy_with_logits(case["pred_score_map"], case["iou_target_map"], reduction="none")
    torch.testing.assert_close(bce, case["bce_per_cell"], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("pass_mask", [True, False], ids=["mask", "derived"])
def test_losses_match_the_official_criterion(official, name, pass_mask):
    case, _, _ = _case(official, name)
    score_map = case["pred_score_map"].clone().requires_grad_(True)
    loss, terms = lora_tracker_loss(
        score_map,
        case["pred_boxes"],
        case["gt_boxes_normalized"],
        positive_mask=case["positive_mask"].bool() if pass_mask else None,
    )
    torch.testing.assert_close(terms["cls_loss"], case["cls_loss"][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(terms["reg_loss"], case["reg_loss"][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(loss.detach(), case["total_loss"][0], rtol=1e-6, atol=0)
    assert terms["num_positives"].item() == case["num_positive_samples"].item()
    # IoU targets are constants: the score gradient is exactly (sigmoid(s) - target) / num_positives.
    loss.backward()
    expected_grad = (score_map.detach().sigmoid() - case["iou_target_map"]) / case["num_positive_samples"]
    torch.testing.assert_close(score_map.grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_no_positive_cell_clamps_the_normaliser_at_one_and_keeps_gradients_finite():
    torch.manual_seed(0)
    score_map = torch.randn(2, 4, 4, requires_grad=True)
    boxes = torch.rand(2, 4, 4, 4, requires_grad=True)
    labels = torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.8]])
    loss, terms = lora_tracker_loss(score_map, boxes, labels, positive_mask=torch.zeros(2, 4, 4, dtype=torch.bool))
    assert terms["num_positives"].item() == 1.0
    expected = F.binary_cross_entropy_with_logits(score_map, torch.zeros_like(score_map), reduction="sum")
    torch.testing.assert_close(loss, expected)
    assert terms["reg_loss"].item() == 0.0
    loss.backward()
    assert torch.isfinite(score_map.grad).all() and boxes.grad is not None and torch.count_nonzero(boxes.grad) == 0


def test_model_forward_computes_the_criterion_on_its_own_outputs():
    torch.manual_seed(0)
    model = LoraTrackerModel(tiny_config()).eval()
    inputs = dict(
        template_pixel_values=torch.randn(2, 3, 56, 56),
        search_pixel_values=torch.randn(2, 3, 112, 112),
        template_token_type_ids=torch.randint(0, 2, (2, 4, 4)),
    )
    labels = torch.tensor([[0.30, 0.35, 0.62, 0.70], [0.05, 0.10, 0.40, 0.30]])
    with torch.no_grad():
        output = model(**inputs, labels=labels)
        expected, terms = lora_tracker_loss(output.score_map, output.pred_boxes, labels)
    torch.testing.assert_close(output.loss, expected, rtol=0, atol=0)
    assert output.loss_dict["num_positives"].item() == terms["num_positives"].item() > 0


def _single_process_sums(score_map, boxes, labels, mask) -> float:
    """cls + reg sums of one rank (what the loss divides by the rank-averaged positive count)."""
    batch_index, cell_index = mask.reshape(1, -1).nonzero(as_tuple=True)
    iou, giou = box_iou_and_giou(labels[batch_index], boxes.reshape(1, -1, 4)[batch_index, cell_index])
    target = torch.zeros(1, 16)
    target[batch_index, cell_index] = iou
    bce = F.binary_cross_entropy_with_logits(score_map.reshape(1, -1), target, reduction="sum")
    return (bce + (1 - giou).sum()).item()


def _rank_entry(rank: int, world_size: int, rendezvous: str, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world_size)
    try:
        torch.manual_seed(rank)
        score_map, boxes = torch.randn(1, 4, 4), torch.rand(1, 4, 4, 4)
        labels = torch.tensor([[0.1, 0.1, 0.6, 0.6]])
        mask = torch.zeros(1, 4, 4, dtype=torch.bool)
        mask.view(-1)[: (2, 6)[rank]] = True  # rank 0: 2 positives, rank 1: 6 -> mean 4
        loss, terms = lora_tracker_loss(score_map, boxes, labels, positive_mask=mask)
        queue.put(
            (rank, (terms["num_positives"].item(), loss.item(), _single_process_sums(score_map, boxes, labels, mask)))
        )
    finally:
        dist.destroy_process_group()


def test_num_positives_is_averaged_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.Queue()
    rendezvous = f"file://{tmp_path / 'rendezvous'}"
    processes = [context.Process(target=_rank_entry, args=(rank, 2, rendezvous, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for rank in range(2):
        num_positives, loss, local_sum = results[rank]
        assert num_positives == 4.0  # mean of 2 and 6, identical on both ranks
        assert loss == pytest.approx(local_sum / 4.0, rel=1e-6)

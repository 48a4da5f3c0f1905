"""Model cards of LoRATv2 trackers: the LoRATv2 text, details and citation, valid Hub metadata."""

from __future__ import annotations

import pytest

from lorat_hf.configuration_loratv2 import Loratv2Config
from lorat_hf.hub import TrackingResult, build_model_card, validate_model_card


def test_a_phase_2_card_describes_its_streams_regions_and_cites_loratv2():
    config = Loratv2Config.from_variant("p2-B-378")
    result = TrackingResult.for_benchmark("LaSOT", {"success_auc": 74.3}, source_name="paper", confirmed=True)
    card = build_model_card(
        config,
        model_name="loratv2-p2-b378",
        base_model=config.backbone_name_or_path,
        num_parameters=(293_203_978, 12_983_813),
        eval_results=[result],
    )
    validate_model_card(card, adapter=True, base_model="facebook/dinov2-with-registers-base")
    text = str(card)
    assert "A LoRATv2 single-object tracker (variant p2-B-378): a stream LoRA adapters" in text
    assert "(`template`, `search_0`, `search_1`), r = 64, alpha = 64" in text
    assert "region 1: 378 × 378 px, 27 × 27 tokens, context factor 5.0" in text
    assert "refreshed after a frame whose confidence exceeds 0.9" in text
    assert "lin2025loratv2" in text and "lin2024lorat" not in text
    assert "Dinov2WithRegisters" in text and "Tracking Meets LoRA" not in text
    assert card.data.eval_results[0].metric_value == 74.3


def test_a_merged_phase_1_card_and_the_missing_counts_error():
    config = Loratv2Config.from_variant("p1-B-224")
    card = build_model_card(
        config, model_name="m", base_model=config.backbone_name_or_path, adapter=False, num_parameters=(1, 0)
    )
    validate_model_card(card, adapter=False)
    assert "merged `Loratv2Model` checkpoint" in str(card) and "region 1" not in str(card)
    with pytest.raises(ValueError, match="num_parameters"):
        build_model_card(config, model_name="m", base_model=config.backbone_name_or_path)

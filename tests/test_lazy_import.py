"""`import lorat_hf` defers OpenCV, peft, accelerate and datasets until a name that needs them is used."""

import subprocess
import sys
import textwrap

import lorat_hf


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True)


def test_import_loads_none_of_the_heavy_libraries():
    _run(
        """
        import sys
        # transformers itself imports accelerate with its modeling code when accelerate is installed, and the Auto /
        # pipeline registrations need lorat_hf's model classes: lorat_hf must add no accelerate module of its own
        import transformers.image_processing_utils, transformers.modeling_utils, transformers.pipelines

        loaded_by_transformers = {m for m in sys.modules if m.split(".")[0] == "accelerate"}
        import lorat_hf

        for name in ("cv2", "peft", "datasets"):
            assert name not in sys.modules, f"import lorat_hf imported {name}"
        added = {m for m in sys.modules if m.split(".")[0] == "accelerate"} - loaded_by_transformers
        assert not added, f"import lorat_hf imported {sorted(added)}"
        """
    )


def test_tracker_and_pipeline_work_without_the_heavy_libraries_then_load_them_on_use():
    _run(
        """
        import sys
        import numpy as np
        import torch
        from transformers import pipeline
        import lorat_hf
        from lorat_hf import LoraTracker, LoraTrackerConfig, LoraTrackerModel

        dinov2 = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=224)
        config = LoraTrackerConfig(dinov2_config=dinov2, template_size=56, search_size=112)
        torch.manual_seed(0)
        model = LoraTrackerModel(config).eval()
        frames = [np.full((96, 128, 3), 40 * index, dtype=np.uint8) for index in range(3)]

        tracked = list(LoraTracker(model).track_video(frames, [30, 20, 24, 18]))
        outputs = pipeline("video-object-tracking", model=model)(frames, init_box=[30, 20, 24, 18])
        assert len(tracked) == len(outputs) == 3
        np.testing.assert_allclose([o["box"] for o in outputs], [t.box for t in tracked], atol=1e-9)
        for name in ("cv2", "peft", "datasets"):
            assert name not in sys.modules, f"tracking arrays imported {name}"

        assert callable(lorat_hf.load_tracker_model) and "peft" in sys.modules
        from lorat_hf.video_io import draw_box
        draw_box(frames[0], [1, 1, 20, 20])
        assert "cv2" in sys.modules
        assert callable(lorat_hf.load_sequences) and "datasets" in sys.modules
        from lorat_hf import run_evaluation, push_tracker_to_hub
        assert callable(run_evaluation) and callable(push_tracker_to_hub)
        """
    )


def test_every_public_name_resolves():
    for name in lorat_hf.__all__:
        assert getattr(lorat_hf, name) is not None
    assert set(lorat_hf.__all__) <= set(dir(lorat_hf))

"""The bridge baseline's teacher states: read live from Whisper when the store lacks its final layer."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.config import load_config
from pipeline.train.bridge import _TeacherStates, teacher_final_layer


def test_without_the_final_layer_in_a_store_the_states_come_from_the_teacher_zero_padded(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"models.cache_dir={tmp_path / 'cache'}"])
    states_source = _TeacherStates(cfg, None, teacher_final_layer(cfg)[0])
    assert states_source.source == "live"
    rng = np.random.default_rng(0)
    clips = {"long": 0.1 * rng.standard_normal(16000, dtype=np.float32),
             "short": 0.1 * rng.standard_normal(8000, dtype=np.float32)}

    class Clips:
        def audio(self, key):
            return clips[key]

    states, lengths = states_source.batch(["long", "short"], Clips())
    alone = [states_source.teacher.encode([clips[k]])[0][0] for k in ("long", "short")]
    assert lengths.tolist() == [a.shape[0] for a in alone] and lengths[0] > lengths[1]
    for i, a in enumerate(alone):
        torch.testing.assert_close(states[i, : lengths[i]], torch.from_numpy(a))
    assert float(states[1, lengths[1]:].abs().sum()) == 0.0

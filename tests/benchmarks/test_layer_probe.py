from benchmarks.layer_probe import parse_layers, voice_gaps


def test_layers_are_read_sorted_and_once():
    assert parse_layers("8,0, 4,4,") == [0, 4, 8]
    assert parse_layers("2") == [2]


def test_each_sets_gap_is_measured_against_the_training_voices():
    cer = {"student 0": {"unseen": 0.61, "dev": 0.52, "dectalk": 0.70}, "teacher 4": {"unseen": 0.20, "dev": 0.21}}
    assert voice_gaps(cer) == {"student 0": {"unseen": 0.09, "dectalk": 0.18}, "teacher 4": {"unseen": -0.01}}
    assert voice_gaps(cer, reference="unseen")["student 0"] == {"dev": -0.09, "dectalk": 0.09}

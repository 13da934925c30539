from benchmarks.ctc_vocabulary import warmup_cosine


def test_the_heads_schedule_warms_up_then_falls_to_zero():
    factors = [warmup_cosine(step, 100, 10) for step in range(101)]
    assert factors[0] == 0.1 and max(factors) <= 1.0
    assert factors[:10] == sorted(factors[:10])              # warm-up rises
    assert factors[10:] == sorted(factors[10:], reverse=True)  # then only falls
    assert factors[-1] == 0.0
